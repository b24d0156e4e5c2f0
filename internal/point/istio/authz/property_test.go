package authz_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
)

// declaredPath is the intents' own meaning of a path, written from the API's doc and not
// from Istio's: the request path, or a prefix ending in "*".
func declaredPath(declared, path string) bool {
	if p, ok := strings.CutSuffix(declared, "*"); ok {
		return strings.HasPrefix(path, p)
	}
	return declared == path
}

// inMesh reports whether the client's pods have a mesh identity.
func inMesh(in authz.Input, c authz.Client) bool {
	return len(c.Pods) > 0 && authz.PodMode(&c.Pods[0], in.NamespaceLabels[c.Ref.Namespace]) != authz.Outside
}

// declares reports whether the intents allow the call: a client with pods in the mesh,
// on a port the server serves, and a request its http resources name (any, without).
func declares(in authz.Input, r authztest.Request) bool {
	if len(in.Server.Ports) > 0 && !slices.Contains(in.Server.Ports, r.Port) {
		return false
	}
	for _, c := range in.Clients {
		if !inMesh(in, c) || r.Principal != trustDomain+"/ns/"+c.Ref.Namespace+"/sa/"+c.Pods[0].Spec.ServiceAccountName {
			continue
		}
		if c.AnyRequest {
			return true
		}
		for _, h := range c.HTTP {
			if declaredPath(h.Path, r.Path) && (len(h.Methods) == 0 || slices.Contains(h.Methods, v2beta1.HTTPMethod(r.Method))) {
				return true
			}
		}
	}
	return false
}

// TestPropertyVerdictIsDeclared: for random intents and random requests, what Istio would
// do with the compiled policies (by the evaluator) is what the intents declare, in
// sidecar mode, and in ambient mode through the waypoint; straight to an ambient pod,
// only clients allowed any request get through (paths cannot be checked there).
func TestPropertyVerdictIsDeclared(t *testing.T) {
	paths := []string{"/", "/a", "/a/b", "/ab", "/b", "/c", "/c/d", "/z"}
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 16))
		in, scenario := authztest.RandomInput(rng, trustDomain)
		clients := in.Clients
		res, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		sidecar := authztest.Checkpoint{Kind: "sidecar", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
		zt := authztest.Checkpoint{Kind: "ztunnel", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
		wp := authztest.Checkpoint{Kind: "waypoint", Namespace: "shop", Service: "nginx"}
		for range 60 {
			r := authztest.Request{Path: paths[rng.IntN(len(paths))], Method: string(authz.Methods[rng.IntN(len(authz.Methods))]), Port: []int32{80, 81}[rng.IntN(2)]}
			var anyRequest bool
			switch k := rng.IntN(len(clients) + 2); {
			case k < len(clients):
				c := clients[k]
				r.Namespace = c.Ref.Namespace
				if inMesh(in, c) {
					r.Principal = trustDomain + "/ns/" + c.Ref.Namespace + "/sa/" + c.Pods[0].Spec.ServiceAccountName
				}
				anyRequest = c.AnyRequest
			case k == len(clients):
				r.Namespace, r.Principal = "shop", trustDomain+"/ns/shop/sa/stranger"
			default:
				r.Namespace = "shop"
			}
			want := declares(in, r)
			var got, direct bool
			switch scenario {
			case authztest.SidecarServer:
				got = authztest.AllowedAt(res.Policies, sidecar, r)
				direct = got
			case authztest.WaypointServer:
				hop := r
				hop.Principal, hop.Namespace = trustDomain+"/ns/shop/sa/waypoint", "shop"
				got = authztest.AllowedAt(res.Policies, wp, r) && authztest.AllowedAt(res.Policies, zt, hop)
				direct = authztest.AllowedAt(res.Policies, zt, r)
			case authztest.AmbientServer:
				got = authztest.AllowedAt(res.Policies, zt, r)
				direct = got
				want = want && anyRequest
			}
			if got != want {
				t.Fatalf("seed %d (%s): %+v: allowed %v, declared %v\nclients %+v\npolicies %v", seed, scenario, r, got, want, clients, res.Policies)
			}
			if direct != (want && (scenario == authztest.SidecarServer || anyRequest)) {
				t.Fatalf("seed %d (%s): %+v: straight to the pod allowed %v", seed, scenario, r, direct)
			}
		}
		for _, c := range clients {
			out := res.Outcomes[c.Ref]
			enforced := inMesh(in, c) && (scenario != authztest.AmbientServer || c.AnyRequest)
			if (out.State == enforcement.Enforced) != enforced || (!enforced && out.Message == "") {
				t.Fatalf("seed %d (%s): client %+v: outcome %+v", seed, scenario, c, out)
			}
		}
	}
}

// TestPropertyOrderDoesNotMatter: the same facts in any order compile to the same
// policies, so a resync that lists objects in another order writes nothing.
func TestPropertyOrderDoesNotMatter(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		in, _ := authztest.RandomInput(rng, trustDomain)
		want, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		shuffled := in
		shuffled.Clients = slices.Clone(in.Clients)
		rng.Shuffle(len(shuffled.Clients), func(i, j int) { shuffled.Clients[i], shuffled.Clients[j] = shuffled.Clients[j], shuffled.Clients[i] })
		for i := range shuffled.Clients {
			c := &shuffled.Clients[i]
			c.HTTP = slices.Clone(c.HTTP)
			rng.Shuffle(len(c.HTTP), func(a, b int) { c.HTTP[a], c.HTTP[b] = c.HTTP[b], c.HTTP[a] })
			for j := range c.HTTP {
				c.HTTP[j].Methods = slices.Clone(c.HTTP[j].Methods)
				slices.Reverse(c.HTTP[j].Methods)
			}
			// A repeated declaration changes nothing either.
			c.HTTP = append(c.HTTP, c.HTTP...)
		}
		shuffled.Server.Ports = append(slices.Clone(in.Server.Ports), in.Server.Ports...)
		got, err := authz.Compile(shuffled)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Policies) != len(want.Policies) {
			t.Fatalf("seed %d: %d policies, want %d", seed, len(got.Policies), len(want.Policies))
		}
		for i := range want.Policies {
			if want.Policies[i].Name != got.Policies[i].Name || !authz.UpToDate(want.Policies[i], got.Policies[i]) {
				t.Fatalf("seed %d: order changes the policy:\n%v\n%v", seed, want.Policies[i].Spec.String(), got.Policies[i].Spec.String())
			}
		}
		if !maps.Equal(want.Outcomes, got.Outcomes) {
			t.Fatalf("seed %d: order changes the outcomes", seed)
		}
	}
}
