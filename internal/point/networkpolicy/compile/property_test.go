package compile

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/intentguard/intentguard/internal/intent"
)

// Random clusters are small on purpose: few names and few app labels, so that names are
// shared across kinds and namespaces, and selectors overlap.
var (
	randomNamespaces = []string{"alpha", "beta", "gamma"}
	randomNames      = []string{"web", "api", "db", "worker", "cache"}
	randomApps       = []string{"web", "api", "db", "worker"}
	// randomIdentityNames may also name pods through the annotation; the long one needs a
	// digest as label value.
	randomIdentityNames = append([]string{strings.Repeat("w", 70), "Legacy_Worker"}, randomNames...)
	randomKinds         = []string{"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}
)

// propertySeeds are the seeds of the property test: a fixed list, then a run of
// consecutive seeds (fewer with -short).
func propertySeeds() []uint64 {
	seeds := []uint64{0, 1, 2, 3, 7, 42, 1337, 20240601, 0xdeadbeef, 1 << 63}
	n := 200
	if testing.Short() {
		n = 20
	}
	for i := 0; i < n; i++ {
		seeds = append(seeds, 1000+uint64(i))
	}
	return seeds
}

// randomCluster builds a cluster and an intents graph from r.
func randomCluster(r *rand.Rand) *cluster {
	pick := func(from []string) string { return from[r.IntN(len(from))] }
	c := newCluster(randomNamespaces[:1+r.IntN(len(randomNamespaces))]...)
	randomLabels := func() []string {
		kv := []string{"app", pick(randomApps)}
		if r.IntN(3) == 0 {
			kv = append(kv, "tier", pick([]string{"front", "back"}))
		}
		return kv
	}
	for _, ns := range c.namespaces {
		taken := map[string]bool{}
		for i, n := 0, 1+r.IntN(6); i < n; i++ {
			name := pick(randomNames)
			kind := pick(randomKinds)
			if r.IntN(5) == 0 {
				kind = "Renamed"
			}
			if taken[kind+"/"+name] {
				continue
			}
			taken[kind+"/"+name] = true
			switch kind {
			case "Deployment", "StatefulSet", "DaemonSet":
				identityName := ""
				if r.IntN(5) == 0 {
					identityName = pick(randomIdentityNames)
				}
				c.controller(kind, ns, name, identityName, r.IntN(3), randomLabels()...)
			case "Job":
				c.job(ns, name, randomLabels()...)
			case "Pod":
				c.barePod(ns, name, randomLabels()...)
			case "Renamed":
				c.renamedPod(ns, name+"-manual", pick(randomIdentityNames), randomLabels()...)
			}
		}
		if r.IntN(3) == 0 {
			var ports []corev1.ServicePort
			switch r.IntN(3) {
			case 0:
				ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}
			case 1:
				ports = []corev1.ServicePort{{Name: "alt", Port: 8080}}
			}
			c.service(ns, pick(randomNames), map[string]string{"app": pick(randomApps)}, ports...)
		}
	}

	// References name identities that exist (mostly), with or without kind (sometimes a
	// wrong one), in any namespace.
	randomRef := func() intent.Ref {
		if len(c.pods) == 0 || r.IntN(5) == 0 {
			return intent.Ref{Namespace: pick(c.namespaces), Name: pick(randomNames)}
		}
		id := c.pods[r.IntN(len(c.pods))].identity
		ref := intent.Ref{Namespace: id.Namespace, Name: id.Name}
		switch r.IntN(4) {
		case 0, 1:
			ref.Kind = id.Kind
		case 2:
			ref.Kind = pick(randomKinds)
		}
		return ref
	}
	var services []intent.Server
	for s := range c.services {
		services = append(services, s)
	}
	randomServer := func() intent.Server {
		if len(services) > 0 && r.IntN(4) == 0 {
			return services[r.IntN(len(services))]
		}
		return intent.Server{Ref: randomRef()}
	}
	for i, n := 0, r.IntN(8); i < n; i++ {
		call := declaredCall{client: randomRef(), server: randomServer()}
		c.calls = append(c.calls, call)
		if !call.server.Service && r.IntN(6) == 0 {
			c.ports[call.server] = []networkingv1.NetworkPolicyPort{pickPort(r, tcp(80), tcp(8080), tcpNamed("http"))}
		}
	}
	if r.IntN(4) == 0 {
		c.protected = append(c.protected, randomServer())
	}
	return c
}

// pickPort picks one of the ports.
func pickPort(r *rand.Rand, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyPort {
	return ports[r.IntN(len(ports))]
}

// clusterFromSeed is the random cluster of a seed pair.
func clusterFromSeed(seed1, seed2 uint64) *cluster {
	return randomCluster(rand.New(rand.NewPCG(seed1, seed2)))
}

// probesOfRandomClusters are the ports random clusters are checked on.
var probesOfRandomClusters = []probe{
	httpProbe,
	{port: 8080, name: "alt", protocol: corev1.ProtocolTCP},
	{port: 80, name: "http", protocol: corev1.ProtocolUDP},
}

// checkRandomCluster reports every verdict of the seed's cluster that differs from its
// intents, with what is needed to reproduce it, and returns the enforcement checked.
func checkRandomCluster(t *testing.T, seed1, seed2 uint64) *applied {
	t.Helper()
	e := clusterFromSeed(seed1, seed2).enforce()
	var bad []string
	for _, pr := range probesOfRandomClusters {
		bad = append(bad, e.mismatches(pr)...)
	}
	if len(bad) > 0 {
		t.Errorf("seed (%d, %d): %d verdicts differ from the intents:\n%s\ncluster:\n%s",
			seed1, seed2, len(bad), strings.Join(bad, "\n"), e.describe())
	}
	return e
}

func TestPropertyRandomClustersAllowExactlyTheDeclaredCalls(t *testing.T) {
	stats := struct{ pods, policies, byLabel, pairs int }{}
	for _, seed := range propertySeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			e := checkRandomCluster(t, seed, seed)
			stats.pods += len(e.cluster.pods)
			stats.policies += len(e.policies)
			stats.pairs += len(e.cluster.pods) * len(e.cluster.pods)
			for _, p := range e.cluster.pods {
				if _, ok := e.labels[p][WorkloadLabel]; ok {
					stats.byLabel++
				}
			}
		})
	}
	// The generator must produce the cases it is there for, or the property says little.
	if stats.policies == 0 || stats.byLabel == 0 || stats.pairs < 1000 {
		t.Errorf("random clusters too poor: %+v", stats)
	}
	t.Logf("checked %d pods, %d policies, %d pod pairs, %d pods labeled by the operator", stats.pods, stats.policies, stats.pairs, stats.byLabel)
}

// FuzzCompileNeverOverAllows runs the property on clusters generated from the fuzzer's
// seeds: no undeclared call to a protected pod is allowed (and no declared one denied).
func FuzzCompileNeverOverAllows(f *testing.F) {
	for _, seed := range propertySeeds()[:10] {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		checkRandomCluster(t, seed1, seed2)
	})
}
