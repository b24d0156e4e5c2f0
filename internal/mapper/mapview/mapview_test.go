package mapview

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

var (
	web = edges.Peer{Kind: edges.PeerWorkload, Namespace: "shop", Name: "web", WorkloadKind: "Deployment"}
	api = edges.Peer{Kind: edges.PeerService, Namespace: "shop", Name: "api"}
	db  = edges.Peer{Kind: edges.PeerWorkload, Namespace: "data", Name: "db", WorkloadKind: "StatefulSet"}
	ext = edges.Peer{Kind: edges.PeerExternal, Name: "api.example.com"}
)

func TestNamesAndFilter(t *testing.T) {
	for _, s := range []string{"web", "web.shop", "shop/web", "shop/web[Deployment]", "Deployment/shop/web"} {
		if !Names(web, s) {
			t.Errorf("%q does not name %s", s, web)
		}
	}
	for _, s := range []string{"web.data", "shop/web[StatefulSet]", "api", "shop"} {
		if Names(web, s) {
			t.Errorf("%q names %s", s, web)
		}
	}
	if !Names(ext, "api.example.com") || !Names(ext, "external:api.example.com") || !Names(api, "shop/api[Service]") {
		t.Error("external hosts and Services by their names")
	}
	k := edges.Key{Client: web, Server: db}
	for _, tc := range []struct {
		f    Filter
		keep bool
	}{
		{Filter{}, true},
		{Filter{Namespace: "data"}, true},
		{Filter{Namespace: "shop"}, true},
		{Filter{Namespace: "other"}, false},
		{Filter{Client: "web", Server: "db.data"}, true},
		{Filter{Client: "db"}, false},
		{Filter{Namespace: "shop", Server: "api"}, false},
	} {
		if got := tc.f.Keep(k); got != tc.keep {
			t.Errorf("%+v keeps %s: %v, want %v", tc.f, k.Client, got, tc.keep)
		}
	}
}

func TestGraphStates(t *testing.T) {
	es := []edges.Edge{
		{Key: edges.Key{Client: web, Server: api, Port: 80, Protocol: "TCP"}, Count: 3},
		{Key: edges.Key{Client: web, Server: db, Port: 5432, Protocol: "TCP"}, Count: 2},
		{Key: edges.Key{Client: web, Server: db, Port: 5433, Protocol: "TCP"}, Count: 1},
	}
	declared := []v2beta1.ClientIntents{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "web"}, Targets: []v2beta1.Target{
			{Service: &v2beta1.ServiceTarget{Name: "api"}},
			{Kubernetes: &v2beta1.KubernetesTarget{Name: "cache"}},
		}}}}
	states := func(g Graph) map[string]string {
		out := map[string]string{}
		for _, a := range g.Arrows {
			out[render.Peer(a.Client)+" -> "+render.Peer(a.Server)] = string(a.State) + " " + a.Label()
		}
		return out
	}
	got := states(NewGraph(es, declared, Filter{}))
	want := map[string]string{
		"shop/web[Deployment] -> shop/api[Service]":    "declared TCP/80 (3)",
		"shop/web[Deployment] -> data/db[StatefulSet]": "undeclared TCP/5432, TCP/5433 (3) undeclared",
		"shop/web[Deployment] -> shop/cache":           "not-observed declared, not observed",
	}
	if len(got) != len(want) {
		t.Fatalf("arrows %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if g := NewGraph(es, nil, Filter{Namespace: "data"}); len(g.Arrows) != 1 || g.Arrows[0].State != Observed || len(g.Nodes) != 2 {
		t.Errorf("without intents, filtered: %+v", g)
	}
}
