package mapcheck

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

const ns = "shop"

var names = []string{"web", "api", "db", "worker"}

// otherNS holds one Deployment, store, for calls across namespaces.
const otherNS = "data"

// cluster is four Deployments (api serves 8080 as "http") and a Service in front of api
// that forwards 80 to "http", and store in another namespace.
func cluster() []client.Object {
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, tutorial.Deployment(otherNS, "store", 0)}
	for _, n := range names {
		port := int32(0)
		if n == "api" {
			port = 8080
		}
		objs = append(objs, tutorial.Deployment(ns, n, port))
	}
	return append(objs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "api"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	})
}

func call(client, server edges.Peer, port uint16) edges.Edge {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return edges.Edge{Key: edges.Key{Client: client, Server: server, Port: port, Protocol: "TCP"}, FirstSeen: t0, LastSeen: t0, Count: 1}
}

func deployment(name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: ns, Name: name, WorkloadKind: "Deployment"}
}

var apiService = edges.Peer{Kind: edges.PeerService, Namespace: ns, Name: "api"}

func TestExportAllowsExactlyTheObservedCalls(t *testing.T) {
	observed := []edges.Edge{
		call(deployment("web"), apiService, 80),
		call(deployment("worker"), deployment("db"), 5432),
		call(deployment("web"), edges.Peer{Kind: edges.PeerExternal, Name: "api.example.com"}, 443),
		call(edges.Peer{Kind: edges.PeerNode, Name: "node-1"}, deployment("api"), 8080),
	}
	exported := export.Export(observed, export.Options{}).Intents
	rep, err := Check(context.Background(), cluster(), exported, observed)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("the export does not allow exactly the observed calls:\n%v", err)
	}
	// web -> api's pod on http, worker -> db's pod on 5432; the three other pods denied
	// on each.
	if rep.Allowed != 2 || rep.Denied != 6 {
		t.Errorf("checked %d allowed and %d denied, want 2 and 6", rep.Allowed, rep.Denied)
	}

	// The check fails when the intents say less or more than the map: here db is
	// protected for api, which was never seen calling it, and not for worker, which was.
	wrong := append(export.Export(observed[:1], export.Options{}).Intents, v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "api"}, Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "db"}}}}})
	rep, err = Check(context.Background(), cluster(), wrong, observed)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"shop/worker-predicted (Deployment/shop/worker) -> shop/db-predicted on TCP/5432: denied, but the map observed the call",
		"shop/api-predicted (Deployment/shop/api) -> shop/db-predicted on TCP/5432: allowed, but the map observed no such call",
	} {
		if !strings.Contains(errString(rep), want) {
			t.Errorf("violations lack %q:\n%s", want, errString(rep))
		}
	}
}

func errString(r Report) string {
	if err := r.Err(); err != nil {
		return err.Error()
	}
	return ""
}

// TestRandomMapsExportExactly: on random maps over the cluster, the export, applied,
// allows exactly the observed calls.
func TestRandomMapsExportExactly(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 1))
		var observed []edges.Edge
		for range 1 + r.IntN(8) {
			server := deployment(names[r.IntN(len(names))])
			port := uint16([]int{8080, 5432, 9090}[r.IntN(3)])
			switch r.IntN(4) {
			case 0:
				server, port = apiService, 80
			case 1:
				server = edges.Peer{Kind: edges.PeerWorkload, Namespace: otherNS, Name: "store", WorkloadKind: "Deployment"}
			}
			client := deployment(names[r.IntN(len(names))])
			if r.IntN(5) == 0 {
				client = edges.Peer{Kind: edges.PeerWorkload, Namespace: otherNS, Name: "store", WorkloadKind: "Deployment"}
			}
			observed = append(observed, call(client, server, port))
		}
		exported := export.Export(observed, export.Options{}).Intents
		rep, err := Check(context.Background(), cluster(), exported, observed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if err := rep.Err(); err != nil {
			t.Fatalf("seed %d: map %v:\n%v", seed, observed, err)
		}
	}
}
