package export

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// Random maps are small on purpose: few names and kinds, so that names are shared across
// kinds, namespaces and peer kinds.
var (
	randomNamespaces = []string{"alpha", "beta"}
	randomNames      = []string{"web", "api", "db"}
	randomKinds      = []string{"Deployment", "StatefulSet", ""}
	randomHosts      = []string{"api.example.com", "cdn.example.com", "192.0.2.7", "2001:db8::5"}
	randomPorts      = []uint16{80, 443, 8080}
)

func randomPeer(r *rand.Rand, client bool) edges.Peer {
	pick := func(from []string) string { return from[r.IntN(len(from))] }
	switch n := r.IntN(10); {
	case n < 6 || client && n < 9:
		return wl(pick(randomNamespaces), pick(randomNames), pick(randomKinds))
	case n < 8:
		return svc(pick(randomNamespaces), pick(randomNames))
	case n < 9 || client:
		return ext(pick(randomHosts))
	default:
		return node("node-1")
	}
}

// randomMap returns distinct edges.
func randomMap(r *rand.Rand) []edges.Edge {
	seen := map[edges.Key]bool{}
	var out []edges.Edge
	for range 1 + r.IntN(25) {
		e := edge(randomPeer(r, true), randomPeer(r, false), randomPorts[r.IntN(len(randomPorts))])
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out
}

// randomDeclared returns ClientIntents declaring some of the map's calls, and others.
func randomDeclared(r *rand.Rand, es []edges.Edge) []v2beta1.ClientIntents {
	full := Export(es, Options{}).Intents
	var out []v2beta1.ClientIntents
	for _, ci := range full {
		if r.IntN(3) == 0 {
			continue
		}
		ci.Spec.Targets = slices.DeleteFunc(slices.Clone(ci.Spec.Targets), func(v2beta1.Target) bool { return r.IntN(2) == 0 })
		if r.IntN(3) == 0 {
			ci.Spec.Workload.Kind = ""
		}
		for i, t := range ci.Spec.Targets {
			switch {
			case t.Kubernetes != nil && r.IntN(3) == 0:
				k := *t.Kubernetes
				k.Kind = ""
				ci.Spec.Targets[i].Kubernetes = &k
			case t.Internet != nil && r.IntN(2) == 0:
				in := *t.Internet
				in.Ports = in.Ports[:r.IntN(len(in.Ports)+1)]
				ci.Spec.Targets[i].Internet = &in
			}
		}
		out = append(out, ci)
	}
	return out
}

func propertySeeds() []uint64 {
	n := 300
	if testing.Short() {
		n = 30
	}
	seeds := []uint64{0, 1, 42, 0xdeadbeef}
	for i := range n {
		seeds = append(seeds, 1000+uint64(i))
	}
	return seeds
}

// clientOf reports whether the ClientIntents is the client's: its workload's name, and
// a kind that admits the client's.
func clientOf(ci v2beta1.ClientIntents, c edges.Peer) bool {
	return ci.Namespace == c.Namespace && ci.Spec.Workload.Name == c.Name && identity.KindMatches(ci.Spec.Workload.Kind, c.WorkloadKind)
}

// justified reports whether every target of the intents names the server of one of the
// calls of its client, and every port of an internet target is one of those calls' ports.
func justified(cis []v2beta1.ClientIntents, calls []edges.Edge) error {
	for _, ci := range cis {
		for _, t := range ci.Spec.Targets {
			var ports []int32
			found := false
			for _, e := range calls {
				if clientOf(ci, e.Client) && TargetCovers(ci.Namespace, withoutPorts(t), e.Key) {
					found = true
					ports = append(ports, int32(e.Port))
				}
			}
			if !found {
				return fmt.Errorf("%s/%s: target %s declares no observed call", ci.Namespace, ci.Name, TargetName(t))
			}
			if t.Internet != nil {
				for _, p := range t.Internet.Ports {
					if !slices.Contains(ports, p) {
						return fmt.Errorf("%s/%s: target %s declares port %d, never observed", ci.Namespace, ci.Name, TargetName(t), p)
					}
				}
			}
		}
	}
	return nil
}

func withoutPorts(t v2beta1.Target) v2beta1.Target {
	if t.Internet != nil {
		in := *t.Internet
		in.Ports = nil
		t.Internet = &in
	}
	return t
}

// TestExportProperties: on random maps, the export declares every observed call a
// ClientIntents can name and nothing else; the delta against random ClientIntents never
// declares a call they declare and never drops one they do not; the output does not
// depend on the order of the map.
func TestExportProperties(t *testing.T) {
	for _, seed := range propertySeeds() {
		r := rand.New(rand.NewPCG(seed, 0))
		es := randomMap(r)
		res := Export(es, Options{})
		var expressible []edges.Edge
		for _, e := range es {
			if inexpressible(e.Key) == "" {
				expressible = append(expressible, e)
			}
		}
		if len(expressible)+len(res.Skipped) != len(es) {
			t.Fatalf("seed %d: %d expressible and %d skipped of %d edges", seed, len(expressible), len(res.Skipped), len(es))
		}
		for _, e := range expressible {
			if !Declares(res.Intents, e.Key) {
				t.Fatalf("seed %d: observed call %s -> %s %s not exported", seed, e.Client, e.Server, PortName(e.Key))
			}
		}
		if err := justified(res.Intents, expressible); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		assertValidShape(t, seed, res.Intents)

		shuffled := slices.Clone(es)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Export(shuffled, Options{}); !reflect.DeepEqual(again.Intents, res.Intents) || !sameSkips(again.Skipped, res.Skipped) {
			t.Fatalf("seed %d: the export depends on the map's order", seed)
		}

		declared := randomDeclared(r, es)
		delta := Export(es, Options{Declared: declared})
		var undeclared []edges.Edge
		for _, e := range expressible {
			if Declares(declared, e.Key) {
				continue
			}
			undeclared = append(undeclared, e)
			if !Declares(delta.Intents, e.Key) {
				t.Fatalf("seed %d: undeclared call %s -> %s %s dropped from the delta", seed, e.Client, e.Server, PortName(e.Key))
			}
		}
		if delta.AlreadyDeclared != len(expressible)-len(undeclared) {
			t.Fatalf("seed %d: %d already declared, want %d", seed, delta.AlreadyDeclared, len(expressible)-len(undeclared))
		}
		if err := justified(added(delta), undeclared); err != nil {
			t.Fatalf("seed %d: the delta re-declares: %v", seed, err)
		}
		for _, ci := range delta.Intents {
			var ev []Evidence
			if err := json.Unmarshal([]byte(ci.Annotations[ObservedAnnotation]), &ev); err != nil || len(ev) == 0 {
				t.Fatalf("seed %d: %s/%s: evidence %v %v", seed, ci.Namespace, ci.Name, ev, err)
			}
		}
	}
}

// sameSkips compares skips as sets: they follow the map's order.
func sameSkips(a, b []Skip) bool {
	key := func(s Skip) string { return s.String() }
	x, y := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		x[i] = key(a[i])
	}
	for i := range b {
		y[i] = key(b[i])
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// assertValidShape checks what the webhook checks across objects: one ClientIntents per
// workload in a namespace, and unique names.
func assertValidShape(t *testing.T, seed uint64, cis []v2beta1.ClientIntents) {
	t.Helper()
	for i, a := range cis {
		if len(a.Spec.Targets) == 0 {
			t.Fatalf("seed %d: %s/%s has no target", seed, a.Namespace, a.Name)
		}
		for _, b := range cis[i+1:] {
			if a.Namespace != b.Namespace {
				continue
			}
			if a.Name == b.Name {
				t.Fatalf("seed %d: two ClientIntents %s/%s", seed, a.Namespace, a.Name)
			}
			wa, wb := a.Spec.Workload, b.Spec.Workload
			if wa.Name == wb.Name && identity.KindsAgree(wa.Kind, wb.Kind) {
				t.Fatalf("seed %d: %s/%s and %s declare the calls of the same workload", seed, a.Namespace, a.Name, b.Name)
			}
		}
	}
}

// added returns the delta's ClientIntents with only the targets the delta added: those
// after the applied targets an extended ClientIntents keeps.
func added(res Result) []v2beta1.ClientIntents {
	var out []v2beta1.ClientIntents
	for _, ci := range res.Intents {
		for _, x := range res.Extended {
			if x.Intents == ci.Namespace+"/"+ci.Name {
				ci.Spec.Targets = ci.Spec.Targets[x.Kept:]
			}
		}
		out = append(out, ci)
	}
	return out
}
