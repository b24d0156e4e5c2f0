package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

const ns = tutorial.Namespace

var seen = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func compute(t *testing.T, opts analysis.Options, observed []edges.Edge, objects ...client.Object) []Server {
	t.Helper()
	snap, err := snapshot.New(objects)
	if err != nil {
		t.Fatal(err)
	}
	r, err := analysis.Analyze(context.Background(), snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Report(context.Background(), r, opts, observed)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// calls is the ClientIntents of the tutorial namespace's workload name.
func calls(name string, targets ...v2beta1.Target) *v2beta1.ClientIntents {
	ci := tutorial.Intents()
	ci.Name, ci.Spec.Workload.Name, ci.Spec.Targets = name, name, targets
	return ci
}

func workloadPeer(namespace, name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: namespace, Name: name, WorkloadKind: "Deployment"}
}

func servicePeer(namespace, name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerService, Namespace: namespace, Name: name}
}

func edge(client, server edges.Peer, port uint16) edges.Edge {
	return edges.Edge{Key: edges.Key{Client: client, Server: server, Port: port, Protocol: "TCP"}, FirstSeen: seen, LastSeen: seen, Count: 1}
}

// verdicts renders a report as "server: client -> called:port verdict (basis)" lines,
// assumed protection first.
func verdicts(servers []Server) []string {
	var out []string
	for _, s := range servers {
		head := s.Server.String()
		if s.Assumed != nil {
			head += " as ProtectedService " + s.Assumed.String()
		}
		out = append(out, head+" "+s.Policy)
		for _, c := range append(append([]Caller{}, s.Blocked...), s.Allowed...) {
			out = append(out, fmt.Sprintf("  %s -> %s:%d %s (%s)", c.Client, c.Called, c.Port, c.Verdict, c.Basis))
		}
	}
	return out
}

// TestReport checks the verdicts on observed calls, server by server, with the
// evaluator on the clients' pods, by declared calls for a client without pods, and as
// traffic from outside for nodes and external hosts.
func TestReport(t *testing.T) {
	server, svc := workloadPeer(ns, "server"), servicePeer(ns, "server")
	caller, other, ghost := workloadPeer(ns, "client"), workloadPeer(ns, "client-other"), workloadPeer(ns, "ghost")
	node := edges.Peer{Kind: edges.PeerNode, Name: "node-1"}
	byAddress := edges.Peer{Kind: edges.PeerExternal, Name: "192.0.2.7"}
	byName := edges.Peer{Kind: edges.PeerExternal, Name: "partner.example.com"}
	observed := []edges.Edge{
		edge(caller, svc, 80),
		edge(other, svc, 80),
		edge(caller, server, 9090),
		edge(ghost, svc, 80),
		edge(workloadPeer(ns, "stranger"), svc, 80),
		edge(node, server, 80),
		edge(byAddress, server, 80),
		edge(server, caller, 80),                              // to a server nothing protects
		edge(caller, workloadPeer("elsewhere", "server"), 80), // same name, other namespace
	}
	intents := []client.Object{tutorial.Intents(), calls("ghost", tutorial.Intents().Spec.Targets...)}
	allowFromBlock := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "partners"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}}}},
		},
	}
	// everyCaller is the verdict on each observed call to the server, whether enforced or
	// protected by a ProtectedService in shadow mode.
	everyCaller := []string{
		"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/server:9090 blocked (evaluated)",
		"  Deployment/otterize-tutorial-npol/client-other -> service/otterize-tutorial-npol/server:80 blocked (evaluated)",
		"  Deployment/otterize-tutorial-npol/stranger -> service/otterize-tutorial-npol/server:80 blocked (declared)",
		"  external/192.0.2.7 -> Deployment/otterize-tutorial-npol/server:80 blocked (outside)",
		"  node/node-1 -> Deployment/otterize-tutorial-npol/server:80 blocked (outside)",
		"  Deployment/otterize-tutorial-npol/client -> service/otterize-tutorial-npol/server:80 allowed (evaluated)",
		"  Deployment/otterize-tutorial-npol/ghost -> service/otterize-tutorial-npol/server:80 allowed (declared)",
	}
	for _, tc := range []struct {
		name     string
		opts     analysis.Options
		objects  []client.Object
		observed []edges.Edge
		want     []string
	}{{
		name: "enforced",
		want: append([]string{"otterize-tutorial-npol/server[Service] otterize-tutorial-npol/access-to.service.server"}, everyCaller...),
	}, {
		name: "shadow mode: as if a ProtectedService named the Service, which closes its pods to the undeclared",
		opts: analysis.Options{Enforcement: enforcement.Options{Shadow: true}},
		want: append([]string{"otterize-tutorial-npol/server[Service] as ProtectedService otterize-tutorial-npol/server otterize-tutorial-npol/access-to.service.server"}, everyCaller...),
	}, {
		name:     "shadow mode, namespace enforced",
		opts:     analysis.Options{Enforcement: enforcement.Options{Shadow: true, EnforcedNamespaces: []string{ns}}},
		observed: []edges.Edge{edge(other, svc, 80)},
		want: []string{
			"otterize-tutorial-npol/server[Service] otterize-tutorial-npol/access-to.service.server",
			"  Deployment/otterize-tutorial-npol/client-other -> service/otterize-tutorial-npol/server:80 blocked (evaluated)",
		},
	}, {
		name:     "a policy admitting addresses: known addresses are judged, unknown ones are not",
		objects:  []client.Object{allowFromBlock},
		observed: []edges.Edge{edge(byAddress, server, 80), edge(byName, server, 80), edge(node, server, 80), edge(edges.Peer{Kind: edges.PeerExternal, Name: "198.51.100.1"}, server, 80)},
		want: []string{
			"otterize-tutorial-npol/server[Service] otterize-tutorial-npol/access-to.service.server",
			"  external/198.51.100.1 -> Deployment/otterize-tutorial-npol/server:80 blocked (outside)",
			"  external/partner.example.com -> Deployment/otterize-tutorial-npol/server:80 undecided (outside)",
			"  node/node-1 -> Deployment/otterize-tutorial-npol/server:80 undecided (outside)",
			"  external/192.0.2.7 -> Deployment/otterize-tutorial-npol/server:80 allowed (outside)",
		},
	}, {
		name:     "a workload target: every port of its pods",
		objects:  []client.Object{calls("client-other", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "server", Kind: "Deployment"}})},
		observed: []edges.Edge{edge(other, server, 9090), edge(other, svc, 80), edge(caller, server, 9090)},
		want: []string{
			"otterize-tutorial-npol/server[Service] otterize-tutorial-npol/access-to.service.server",
			"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/server:9090 blocked (evaluated)",
			"  Deployment/otterize-tutorial-npol/client-other -> Deployment/otterize-tutorial-npol/server:9090 allowed (evaluated)",
			"  Deployment/otterize-tutorial-npol/client-other -> service/otterize-tutorial-npol/server:80 allowed (evaluated)",
			"otterize-tutorial-npol/server[Deployment] otterize-tutorial-npol/access-to.deployment.server",
			"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/server:9090 blocked (evaluated)",
			"  Deployment/otterize-tutorial-npol/client-other -> Deployment/otterize-tutorial-npol/server:9090 allowed (evaluated)",
			"  Deployment/otterize-tutorial-npol/client-other -> service/otterize-tutorial-npol/server:80 allowed (evaluated)",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			objects := append(append(tutorial.Objects(), intents...), tc.objects...)
			obs := observed
			if tc.observed != nil {
				obs = tc.observed
			}
			got := verdicts(compute(t, tc.opts, obs, objects...))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestReportServicePortsAndPods checks that a call to a Service's address is judged on
// the port it forwards to (port 80 is admitted only as the target port named http,
// 8080), and that the map's sample pods are judged when the inputs hold them, else all
// the client's pods: one of two admitted is partly blocked.
func TestReportServicePortsAndPods(t *testing.T) {
	web := tutorial.Deployment(ns, "web", 8080)
	front := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "front"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9090)},
		}},
	}
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "client", Controller: ptr(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		}
	}
	canary := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"track": "canary"}}}}}},
		},
	}
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, web, front,
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"}, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
		pod("client-a", map[string]string{"app": "client"}), pod("client-b", map[string]string{"app": "client", "track": "canary"}),
		calls("client", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "front"}}), canary,
	}
	caller, front80 := workloadPeer(ns, "client"), servicePeer(ns, "front")
	sampled := func(e edges.Edge, pods ...string) edges.Edge { e.ClientPods = pods; return e }
	got := verdicts(compute(t, analysis.Options{}, []edges.Edge{
		edge(caller, front80, 80),
		edge(caller, front80, 9000),
		sampled(edge(caller, workloadPeer(ns, "web"), 7070), ns+"/client-a"),
		edge(caller, workloadPeer(ns, "web"), 7071),
		sampled(edge(caller, workloadPeer(ns, "web"), 7072), ns+"/client-b", ns+"/gone"),
	}, objects...))
	want := []string{
		"otterize-tutorial-npol/front[Service] otterize-tutorial-npol/access-to.service.front",
		"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/web:7070 blocked (evaluated)",
		"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/web:7071 partly-blocked (evaluated)",
		"  Deployment/otterize-tutorial-npol/client -> Deployment/otterize-tutorial-npol/web:7072 allowed (evaluated)",
		"  Deployment/otterize-tutorial-npol/client -> service/otterize-tutorial-npol/front:80 allowed (evaluated)",
		"  Deployment/otterize-tutorial-npol/client -> service/otterize-tutorial-npol/front:9000 allowed (evaluated)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func ptr[T any](v T) *T { return &v }
