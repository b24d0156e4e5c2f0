package intent

import (
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Ordinary servers keep the readable names earlier releases gave them, so an upgrade
// does not rename their policies.
func TestPolicyNamesOfOrdinaryServersAreReadable(t *testing.T) {
	for _, tt := range []struct {
		s    Server
		want string
	}{
		{Server{Ref: Ref{"ns", "web", ""}}, "access-to.any.web"},
		{Server{Ref: Ref{"ns", "web", ""}, Service: true}, "access-to.service.web"},
		{Server{Ref: Ref{"ns", "web", "Deployment"}}, "access-to.deployment.web"},
		{Server{Ref: Ref{"ns", "ledger", "StatefulSet"}}, "access-to.statefulset.ledger"},
		{Server{Ref: Ref{"ns", "agent", "DaemonSet"}}, "access-to.daemonset.agent"},
		{Server{Ref: Ref{"ns", "nightly", "CronJob"}}, "access-to.cronjob.nightly"},
		{Server{Ref: Ref{"ns", "once", "Job"}}, "access-to.job.once"},
		{Server{Ref: Ref{"ns", "debug", "Pod"}}, "access-to.pod.debug"},
		{Server{Ref: Ref{"ns", "rs", "ReplicaSet"}}, "access-to.replicaset.rs"},
		{Server{Ref: Ref{"ns", "rc", "ReplicationController"}}, "access-to.replicationcontroller.rc"},
		{Server{Ref: Ref{"ns", "my-api-2", "Deployment"}}, "access-to.deployment.my-api-2"},
	} {
		if got := tt.s.PolicyName(); got != tt.want {
			t.Errorf("PolicyName(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// Servers whose kinds differ only in letter case, or whose kind lowercases to the word
// another kind of server is named by, are different servers and get different policies.
func TestPolicyNamesOfLookalikeServersDiffer(t *testing.T) {
	servers := []Server{
		{Ref: Ref{"ns", "api", ""}},
		{Ref: Ref{"ns", "api", ""}, Service: true},
		{Ref: Ref{"ns", "api", "Deployment"}},
		{Ref: Ref{"ns", "api", "DeploymenT"}},
		{Ref: Ref{"ns", "api", "DEPLOYMENT"}},
		{Ref: Ref{"ns", "api", "deployment"}},
		{Ref: Ref{"ns", "api", "StatefulSet"}},
		{Ref: Ref{"ns", "api", "Statefulset"}},
		{Ref: Ref{"ns", "api", "Service"}},
		{Ref: Ref{"ns", "api", "SERVICE"}},
		{Ref: Ref{"ns", "api", "Any"}},
		{Ref: Ref{"ns", "api", "Rollout"}},
		{Ref: Ref{"ns", "api", "RollOut"}},
		{Ref: Ref{"ns", "service", ""}},
		{Ref: Ref{"ns", "any", ""}},
		{Ref: Ref{"ns", "web", ""}},
		{Ref: Ref{"ns", "web", "Deployment"}},
		{Ref: Ref{"ns", "web", ""}, Service: true},
	}
	seen := map[string]Server{}
	for _, s := range servers {
		n := s.PolicyName()
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
func randomServer(r *rand.Rand) Server {
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
	s := Server{Ref: Ref{Namespace: pick("ns", "other"), Name: name}}
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
		byName := map[string]Server{}
		for i := 0; i < 2000; i++ {
			s := randomServer(r)
			n := s.PolicyName()
			if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
				t.Fatalf("seed %d: PolicyName(%q) = %q is not an object name: %v", seed, s, n, errs)
			}
			if again := s.PolicyName(); again != n {
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
