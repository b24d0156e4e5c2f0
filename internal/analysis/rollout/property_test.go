package rollout

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// world is a random cluster: Deployments, some behind a Service of their own name
// (port 80 to the container port named http, 81 to 9090), ClientIntents, a map of
// observed calls (through a Service's ports, or to a workload's pods on any port), and
// the roll-out settings.
type world struct {
	namespaces []string
	workloads  map[string][]string // by namespace
	services   map[string]bool     // "namespace/name"
	intents    map[string][]v2beta1.Target
	protected  []v2beta1.ProtectedService
	observed   []edges.Edge
	opts       analysis.Options
}

func randomWorld(r *rand.Rand) *world {
	names := []string{"web", "api", "db", "worker"}
	w := &world{workloads: map[string][]string{}, services: map[string]bool{}, intents: map[string][]v2beta1.Target{}}
	w.namespaces = []string{"alpha", "beta"}[:1+r.IntN(2)]
	for _, ns := range w.namespaces {
		for _, name := range names {
			if r.IntN(4) == 0 {
				continue
			}
			w.workloads[ns] = append(w.workloads[ns], name)
			if r.IntN(2) == 0 {
				w.services[ns+"/"+name] = true
			}
		}
	}
	var peers []edges.Peer
	for _, ns := range w.namespaces {
		for _, name := range w.workloads[ns] {
			peers = append(peers, workloadPeer(ns, name))
		}
		// A client of the map whose pods the inputs do not hold.
		peers = append(peers, workloadPeer(ns, "ghost"))
	}
	target := func(server edges.Peer) v2beta1.Target {
		name := server.Name + "." + server.Namespace
		if server.Kind == edges.PeerService {
			return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}}
		}
		return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: "Deployment"}}
	}
	servers := slices.DeleteFunc(slices.Clone(peers), func(p edges.Peer) bool { return p.Name == "ghost" })
	for _, s := range slices.Clone(servers) {
		if w.services[s.Namespace+"/"+s.Name] {
			servers = append(servers, servicePeer(s.Namespace, s.Name))
		}
	}
	if len(servers) == 0 {
		return w
	}
	for i, n := 0, r.IntN(8); i < n; i++ {
		c, s := peers[r.IntN(len(peers))], servers[r.IntN(len(servers))]
		w.intents[c.Namespace+"/"+c.Name] = append(w.intents[c.Namespace+"/"+c.Name], target(s))
	}
	for i, n := 0, 1+r.IntN(10); i < n; i++ {
		c, s := peers[r.IntN(len(peers))], servers[r.IntN(len(servers))]
		port := []uint16{8080, 9090, 7070}[r.IntN(3)]
		if s.Kind == edges.PeerService {
			port = []uint16{80, 81}[r.IntN(2)]
		}
		e := edge(c, s, port)
		e.LastSeen = seen.Add(time.Duration(i) * time.Minute)
		w.observed = append(w.observed, e)
	}
	w.opts.Enforcement.Shadow = r.IntN(3) > 0
	if r.IntN(3) == 0 {
		w.opts.Enforcement.EnforcedNamespaces = []string{w.namespaces[0]}
	}
	if s := servers[r.IntN(len(servers))]; r.IntN(3) == 0 {
		w.protected = append(w.protected, v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}, Spec: v2beta1.ProtectedServiceSpec{Name: s.Name}})
	}
	return w
}

func (w *world) objects() []client.Object {
	var out []client.Object
	for _, ns := range w.namespaces {
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		for _, name := range w.workloads[ns] {
			d := tutorial.Deployment(ns, name, 8080)
			d.Spec.Template.Spec.Containers[0].Ports = append(d.Spec.Template.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "admin", ContainerPort: 9090})
			out = append(out, d)
			if w.services[ns+"/"+name] {
				out = append(out, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{
						{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
						{Name: "admin", Port: 81, TargetPort: intstr.FromInt32(9090)},
					}},
				})
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(w.intents)) {
		ns, name, _ := strings.Cut(key, "/")
		out = append(out, &v2beta1.ClientIntents{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: name}, Targets: w.intents[key]},
		})
	}
	for i := range w.protected {
		out = append(out, &w.protected[i])
	}
	return out
}

// declareEvery adds to each blocked workload caller's ClientIntents the call it was
// observed making: to the Service it connected to, or to the workload; it reports how
// many calls it added.
func (w *world) declareEvery(report []Server) int {
	added := 0
	for _, s := range report {
		for _, c := range s.Blocked {
			if c.Client.Kind != edges.PeerWorkload {
				continue
			}
			key := c.Client.Namespace + "/" + c.Client.Name
			name := c.Called.Name + "." + c.Called.Namespace
			t := v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: "Deployment"}}
			if c.Called.Kind == edges.PeerService {
				t = v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}}
			}
			if !slices.ContainsFunc(w.intents[key], func(o v2beta1.Target) bool { return intentTargetKey(o) == intentTargetKey(t) }) {
				w.intents[key] = append(w.intents[key], t)
				added++
			}
		}
	}
	return added
}

func intentTargetKey(t v2beta1.Target) string {
	if t.Service != nil {
		return "service " + t.Service.Name
	}
	return "kubernetes " + t.Kubernetes.Name + " " + t.Kubernetes.Kind
}

// TestDeclaringTheBlockedCallsEmptiesTheReport is the report's property: whatever the
// cluster, intents, settings and map, once every blocked caller declares the call it
// was observed making, no caller of any server is blocked; a report never holds a
// server the settings and a ProtectedService could not protect, nor more callers than
// calls; and on an enforced server, a workload's direct call gets explain's verdict.
func TestDeclaringTheBlockedCallsEmptiesTheReport(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 40
	}
	blockedSeen, compared := 0, 0
	for seed := range uint64(seeds) {
		w := randomWorld(rand.New(rand.NewPCG(seed, 17)))
		before := compute(t, w.opts, w.observed, w.objects()...)
		for _, s := range before {
			if s.Enforced == (s.Assumed != nil) {
				t.Fatalf("seed %d: %s: enforced %v with assumed protection %v", seed, s.Server, s.Enforced, s.Assumed)
			}
			if got := len(s.Blocked) + len(s.Allowed); got > len(w.observed) {
				t.Fatalf("seed %d: %s: %d callers from %d observed calls", seed, s.Server, got, len(w.observed))
			}
		}
		blockedSeen += Stopped(before)
		compared += w.agreesWithExplain(t, seed, before)
		if w.declareEvery(before) == 0 {
			continue
		}
		after := compute(t, w.opts, w.observed, w.objects()...)
		for _, s := range after {
			for _, c := range s.Blocked {
				if c.Client.Kind == edges.PeerWorkload {
					t.Errorf("seed %d: %s still blocks %s -> %s:%d (%s, %s) after it declared the call", seed, s.Server, c.Client, c.Called, c.Port, c.Verdict, c.Basis)
				}
			}
		}
	}
	if blockedSeen == 0 || compared == 0 {
		t.Fatalf("%d blocked callers, %d verdicts compared with explain: the property was never exercised", blockedSeen, compared)
	}
}

// agreesWithExplain compares the verdicts on enforced servers' direct calls between
// workloads with pods with explain's on the same state; it returns how many it compared.
func (w *world) agreesWithExplain(t *testing.T, seed uint64, report []Server) int {
	t.Helper()
	snap, err := snapshot.New(w.objects())
	if err != nil {
		t.Fatal(err)
	}
	r, err := analysis.Analyze(context.Background(), snap, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Verdict]string{Allowed: analysis.Allowed, Blocked: analysis.Denied, Partly: analysis.Mixed}
	n := 0
	for _, s := range report {
		for _, c := range append(slices.Clone(s.Blocked), s.Allowed...) {
			if !s.Enforced || c.Basis != Evaluated || c.Called.Kind != edges.PeerWorkload {
				continue
			}
			q := analysis.Query{
				From: analysis.Endpoint{Namespace: c.Client.Namespace, Name: c.Client.Name, Kind: c.Client.WorkloadKind},
				To:   analysis.Endpoint{Namespace: c.Called.Namespace, Name: c.Called.Name, Kind: c.Called.WorkloadKind},
				Port: fmt.Sprintf("%s/%d", c.Protocol, c.Port),
			}
			es, err := r.Explain(q)
			if err != nil || len(es) == 0 {
				t.Fatalf("seed %d: explain %v: %v", seed, q, err)
			}
			if es[0].Verdict != want[c.Verdict] {
				t.Errorf("seed %d: %s: %s -> %s:%d is %s, explain says %s", seed, s.Server, c.Client, c.Called, c.Port, c.Verdict, es[0].Verdict)
			}
			n++
		}
	}
	return n
}
