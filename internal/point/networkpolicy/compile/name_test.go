package compile

import (
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/intent"
)

// Ordinary servers keep the readable names earlier releases gave them, so an upgrade
// does not rename their policies.
func TestPolicyNamesOfOrdinaryServersAreReadable(t *testing.T) {
	for _, tt := range []struct {
		s    intent.Server
		want string
	}{
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: ""}}, "access-to.any.web"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: ""}, Service: true}, "access-to.service.web"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: "Deployment"}}, "access-to.deployment.web"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "ledger", Kind: "StatefulSet"}}, "access-to.statefulset.ledger"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "agent", Kind: "DaemonSet"}}, "access-to.daemonset.agent"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "nightly", Kind: "CronJob"}}, "access-to.cronjob.nightly"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "once", Kind: "Job"}}, "access-to.job.once"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "debug", Kind: "Pod"}}, "access-to.pod.debug"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "rs", Kind: "ReplicaSet"}}, "access-to.replicaset.rs"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "rc", Kind: "ReplicationController"}}, "access-to.replicationcontroller.rc"},
		{intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "my-api-2", Kind: "Deployment"}}, "access-to.deployment.my-api-2"},
	} {
		if got := PolicyName(tt.s); got != tt.want {
			t.Errorf("PolicyName(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// Servers whose kinds differ only in letter case, or whose kind lowercases to the word
// another kind of server is named by, are different servers and get different policies.
func TestPolicyNamesOfLookalikeServersDiffer(t *testing.T) {
	servers := []intent.Server{
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: ""}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: ""}, Service: true},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "Deployment"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "DeploymenT"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "DEPLOYMENT"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "deployment"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "StatefulSet"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "Statefulset"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "Service"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "SERVICE"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "Any"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "Rollout"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "api", Kind: "RollOut"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "service", Kind: ""}},
		{Ref: intent.Ref{Namespace: "ns", Name: "any", Kind: ""}},
		{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: ""}},
		{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: "Deployment"}},
		{Ref: intent.Ref{Namespace: "ns", Name: "web", Kind: ""}, Service: true},
	}
	seen := map[string]intent.Server{}
	for _, s := range servers {
		n := PolicyName(s)
		if other, dup := seen[n]; dup {
			t.Errorf("%v and %v share policy name %q", s, other, n)
		}
		seen[n] = s
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("PolicyName(%v) = %q: %v", s, n, errs)
		}
	}
}

// randomServer draws a server from a small alphabet, so that near-collisions are common:
// kinds in every letter case, the words the name is built from as kinds and names, names
// with dots and dashes, and names and kinds far over any length limit.
func randomServer(r *rand.Rand) intent.Server {
	pick := func(from ...string) string { return from[r.IntN(len(from))] }
	flipCase := func(s string) string {
		b := []byte(s)
		for i := range b {
			if r.IntN(3) == 0 {
				switch c := b[i]; {
				case c >= 'a' && c <= 'z':
					b[i] = c - 'a' + 'A'
				case c >= 'A' && c <= 'Z':
					b[i] = c - 'A' + 'a'
				}
			}
		}
		return string(b)
	}
	name := pick("api", "web", "any", "service", "deployment", "a-b", "a", "b", "0123456789abcdef0123")
	switch r.IntN(6) {
	case 0:
		name += pick(".", "-", ".deployment.", "-x", ".api")
		name += pick("api", "web", "b", "")
	case 1:
		name = strings.Repeat(pick("a", "b", "ab", "a-"), 50+r.IntN(150)) + pick("", "x", "y")
	}
	s := intent.Server{Ref: intent.Ref{Namespace: pick("ns", "other"), Name: name}}
	switch r.IntN(4) {
	case 0:
		s.Service = true
	case 1:
	default:
		s.Kind = pick("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod", "Service", "Any", "Rollout", "A", "B")
		if r.IntN(2) == 0 {
			s.Kind = flipCase(s.Kind)
		}
		if r.IntN(8) == 0 {
			s.Kind = strings.Repeat(s.Kind, 10+r.IntN(30))
		}
		if r.IntN(8) == 0 {
			s.Kind += pick(".api", "-", "_x", "/api")
		}
	}
	return s
}

// Policy names are a function of the server that never maps two servers of one namespace
// to the same name, and each is a valid object name.
func TestPolicyNamesAreInjectiveAndValid(t *testing.T) {
	seeds := []uint64{0, 1, 2, 3, 42, 1337, 0xdeadbeef}
	for i := uint64(0); i < 20; i++ {
		seeds = append(seeds, 5000+i)
	}
	for _, seed := range seeds {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		byName := map[string]intent.Server{}
		for i := 0; i < 2000; i++ {
			s := randomServer(r)
			n := PolicyName(s)
			if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
				t.Fatalf("seed %d: PolicyName(%q) = %q is not an object name: %v", seed, s, n, errs)
			}
			if again := PolicyName(s); again != n {
				t.Fatalf("seed %d: PolicyName(%q) is %q, then %q", seed, s, n, again)
			}
			key := s.Namespace + "/" + n
			if other, ok := byName[key]; ok && other != s {
				t.Fatalf("seed %d: %#v and %#v share policy name %q", seed, other, s, n)
			}
			byName[key] = s
		}
	}
}

// Distinct names are TestPolicyNamesOfLookalikeServersDiffer's; this is the bound for a
// name no schema would admit.
func TestPolicyNameIsBounded(t *testing.T) {
	long := intent.Server{Ref: intent.Ref{Namespace: "ns", Name: string(make([]byte, 300))}}
	if n := PolicyName(long); len(n) > 253 {
		t.Fatalf("policy name of %d characters", len(n))
	}
}
