package authz_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
)

// declaredPath is the intents' own meaning of a path, written from the API's doc and not
// from Istio's: the request path, or a prefix ending in "*".
func declaredPath(declared, path string) bool {
	if p, ok := strings.CutSuffix(declared, "*"); ok {
		return strings.HasPrefix(path, p)
	}
	return declared == path
}

type genClient struct {
	authz.Client
	inMesh bool
}

// declares reports whether the intents allow the call: a client with pods in the mesh,
// on a port the server serves, and a request its http resources name (any, without).
func declares(clients []genClient, ports []int32, r request) bool {
	if len(ports) > 0 && !slices.Contains(ports, r.port) {
		return false
	}
	for _, c := range clients {
		if !c.inMesh || len(c.Pods) == 0 || r.principal != trustDomain+"/ns/"+c.Ref.Namespace+"/sa/"+c.Pods[0].Spec.ServiceAccountName {
			continue
		}
		if c.AnyRequest {
			return true
		}
		for _, h := range c.HTTP {
			if declaredPath(h.Path, r.path) && (len(h.Methods) == 0 || slices.Contains(h.Methods, v2beta1.HTTPMethod(r.method))) {
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
	patterns := []string{"/a", "/a/b", "/b", "/c", "/a*", "/c/*", "/*", "/"}
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 16))
		scenario := []string{"sidecar", "waypoint", "ambient"}[rng.IntN(3)]
		serverMode := "sidecar"
		nsLabels := map[string]map[string]string{}
		if scenario != "sidecar" {
			serverMode = ""
			nsLabels["shop"] = map[string]string{authz.DataplaneModeLabel: authz.DataplaneAmbient}
		}
		in := authz.Input{TrustDomain: trustDomain, NamespaceLabels: nsLabels, Server: authz.Server{
			Ref:      intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true},
			Selector: map[string]string{"app": "nginx"},
			Pods:     []corev1.Pod{pod("nginx-1", "shop", "nginx", serverMode, map[string]string{"app": "nginx"})},
		}}
		if scenario == "waypoint" {
			in.Server.Services = []corev1.Service{service("nginx", "shop", "waypoint")}
		} else if scenario == "ambient" {
			in.Server.Services = []corev1.Service{service("nginx", "shop", "")}
		}
		if rng.IntN(2) == 0 {
			in.Server.Ports = []int32{80}
		}
		var clients []genClient
		for i := range 1 + rng.IntN(4) {
			ns := []string{"shop", "web"}[rng.IntN(2)]
			c := genClient{Client: authz.Client{Ref: intent.Ref{Namespace: ns, Name: fmt.Sprintf("c%d", i)}}, inMesh: rng.IntN(7) > 0}
			mode := []string{"sidecar", "native", "ambient"}[rng.IntN(3)]
			if !c.inMesh {
				mode = "optout"
			}
			if rng.IntN(10) > 0 {
				c.Pods = []corev1.Pod{pod(fmt.Sprintf("c%d-1", i), ns, fmt.Sprintf("sa%d", i), mode, nil)}
			}
			if rng.IntN(3) == 0 {
				c.AnyRequest = true
			} else {
				for range 1 + rng.IntN(3) {
					h := v2beta1.HTTPTarget{Path: patterns[rng.IntN(len(patterns))]}
					for _, m := range authz.Methods {
						if rng.IntN(4) == 0 {
							h.Methods = append(h.Methods, m)
						}
					}
					c.HTTP = append(c.HTTP, h)
				}
			}
			clients = append(clients, c)
			in.Clients = append(in.Clients, c.Client)
		}
		res, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		sidecar := checkpoint{kind: "sidecar", namespace: "shop", labels: map[string]string{"app": "nginx"}}
		zt := checkpoint{kind: "ztunnel", namespace: "shop", labels: map[string]string{"app": "nginx"}}
		wp := checkpoint{kind: "waypoint", namespace: "shop", service: "nginx"}
		for range 60 {
			r := request{path: paths[rng.IntN(len(paths))], method: string(authz.Methods[rng.IntN(len(authz.Methods))]), port: []int32{80, 81}[rng.IntN(2)]}
			var anyRequest bool
			switch k := rng.IntN(len(clients) + 2); {
			case k < len(clients):
				c := clients[k]
				r.namespace = c.Ref.Namespace
				if c.inMesh && len(c.Pods) > 0 {
					r.principal = trustDomain + "/ns/" + c.Ref.Namespace + "/sa/" + c.Pods[0].Spec.ServiceAccountName
				}
				anyRequest = c.AnyRequest
			case k == len(clients):
				r.namespace, r.principal = "shop", trustDomain+"/ns/shop/sa/stranger"
			default:
				r.namespace = "shop"
			}
			want := declares(clients, in.Server.Ports, r)
			var got, direct bool
			switch scenario {
			case "sidecar":
				got = allowedAt(res.Policies, sidecar, r)
				direct = got
			case "waypoint":
				hop := r
				hop.principal, hop.namespace = trustDomain+"/ns/shop/sa/waypoint", "shop"
				got = allowedAt(res.Policies, wp, r) && allowedAt(res.Policies, zt, hop)
				direct = allowedAt(res.Policies, zt, r)
			case "ambient":
				got = allowedAt(res.Policies, zt, r)
				direct = got
				want = want && anyRequest
			}
			if got != want {
				t.Fatalf("seed %d (%s): %+v: allowed %v, declared %v\nclients %+v\npolicies %v", seed, scenario, r, got, want, clients, res.Policies)
			}
			if direct != (want && (scenario == "sidecar" || anyRequest)) {
				t.Fatalf("seed %d (%s): %+v: straight to the pod allowed %v", seed, scenario, r, direct)
			}
		}
		for _, c := range clients {
			out := res.Outcomes[c.Ref]
			enforced := c.inMesh && len(c.Pods) > 0 && (scenario != "ambient" || c.AnyRequest)
			if (out.State == enforcement.Enforced) != enforced || (!enforced && out.Message == "") {
				t.Fatalf("seed %d (%s): client %+v: outcome %+v", seed, scenario, c, out)
			}
		}
	}
}
