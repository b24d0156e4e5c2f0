package authztest

import (
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEvaluatorSemantics pins the evaluator to Istio's documented examples, so that the
// compiler's tests rest on the documented behaviour and not on the evaluator's whims.
func TestEvaluatorSemantics(t *testing.T) {
	pol := func(name string, action securityv1beta1.AuthorizationPolicy_Action, sel map[string]string, svc string, rules ...*securityv1beta1.Rule) *securityv1.AuthorizationPolicy {
		p := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "foo"}}
		p.Spec.Action = action
		if sel != nil {
			p.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
		}
		if svc != "" {
			p.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: svc}}
		}
		p.Spec.Rules = rules
		return p
	}
	from := func(principals ...string) []*securityv1beta1.Rule_From {
		return []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: principals}}}
	}
	op := func(methods, paths, ports []string) []*securityv1beta1.Rule_To {
		return []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: methods, Paths: paths, Ports: ports}}}
	}
	allow, deny := securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY
	app := map[string]string{"app": "httpbin"}
	sidecar := Checkpoint{Kind: "sidecar", Namespace: "foo", Labels: app}
	ztunnel := Checkpoint{Kind: "ztunnel", Namespace: "foo", Labels: app}
	waypoint := Checkpoint{Kind: "waypoint", Namespace: "foo", Service: "httpbin"}
	sleep := "cluster.local/ns/default/sa/sleep"
	get := func(path string) Request {
		return Request{Principal: sleep, Namespace: "default", Path: path, Method: "GET", Port: 8080}
	}
	docExample := pol("httpbin", allow, app, "", &securityv1beta1.Rule{
		From: []*securityv1beta1.Rule_From{
			{Source: &securityv1beta1.Source{Principals: []string{sleep}}},
			{Source: &securityv1beta1.Source{Namespaces: []string{"test"}}},
		},
		To: append(op([]string{"GET"}, []string{"/info*"}, nil), op([]string{"POST"}, []string{"/data"}, nil)...),
	})
	cases := []struct {
		name     string
		policies []*securityv1.AuthorizationPolicy
		at       Checkpoint
		req      Request
		want     bool
	}{
		{"no policy allows", nil, sidecar, get("/x"), true},
		{"doc example: GET prefix", []*securityv1.AuthorizationPolicy{docExample}, sidecar, get("/info/a"), true},
		{"doc example: GET elsewhere", []*securityv1.AuthorizationPolicy{docExample}, sidecar, get("/data"), false},
		{"doc example: POST /data", []*securityv1.AuthorizationPolicy{docExample}, sidecar, Request{Principal: sleep, Namespace: "default", Path: "/data", Method: "POST"}, true},
		{"doc example: namespace test", []*securityv1.AuthorizationPolicy{docExample}, sidecar, Request{Principal: "cluster.local/ns/test/sa/x", Namespace: "test", Path: "/info", Method: "GET"}, true},
		{"doc example: plaintext caller", []*securityv1.AuthorizationPolicy{docExample}, sidecar, Request{Namespace: "test", Path: "/info", Method: "GET"}, false},
		{"allow without rules denies all", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "")}, sidecar, get("/"), false},
		{"allow with an empty rule allows all", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{})}, sidecar, get("/"), true},
		{"deny wins over allow", []*securityv1.AuthorizationPolicy{
			pol("a", allow, app, "", &securityv1beta1.Rule{}),
			pol("d", deny, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/admin*"}, nil)}),
		}, sidecar, get("/admin/x"), false},
		{"deny elsewhere leaves allow", []*securityv1.AuthorizationPolicy{
			pol("a", allow, app, "", &securityv1beta1.Rule{}),
			pol("d", deny, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/admin*"}, nil)}),
		}, sidecar, get("/user"), true},
		{"suffix path", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, []string{"*.png"}, nil)})}, sidecar, get("/a/b.png"), true},
		{"template one segment", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/users/{*}/orders"}, nil)})}, sidecar, get("/users/7/orders"), true},
		{"template one segment, not two", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/users/{*}/orders"}, nil)})}, sidecar, get("/users/7/8/orders"), false},
		{"template many segments", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/files/{**}"}, nil)})}, sidecar, get("/files/a/b/c"), true},
		{"template literal after many", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, []string{"/files/{**}/x.txt"}, nil)})}, sidecar, get("/files/a/b/y.txt"), false},
		{"ports", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{To: op(nil, nil, []string{"9090"})})}, sidecar, get("/"), false},
		{"methods", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{From: from(sleep), To: op([]string{"HEAD"}, nil, nil)})}, sidecar, get("/"), false},
		{"selector of another workload", []*securityv1.AuthorizationPolicy{pol("x", allow, map[string]string{"app": "other"}, "")}, sidecar, get("/"), true},
		{"targetRefs do not reach sidecars", []*securityv1.AuthorizationPolicy{pol("x", allow, nil, "httpbin")}, sidecar, get("/"), true},
		{"targetRefs reach the waypoint", []*securityv1.AuthorizationPolicy{pol("x", allow, nil, "httpbin")}, waypoint, get("/"), false},
		{"selectors do not reach the waypoint", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "")}, waypoint, get("/"), true},
		{"ztunnel: L7 allow rule never matches", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{From: from(sleep), To: op([]string{"GET"}, nil, nil)})}, ztunnel, get("/"), false},
		{"ztunnel: L4 allow rule matches", []*securityv1.AuthorizationPolicy{pol("x", allow, app, "", &securityv1beta1.Rule{From: from(sleep), To: op(nil, nil, []string{"8080"})})}, ztunnel, get("/"), true},
		{"ztunnel: L7 deny rule denies more", []*securityv1.AuthorizationPolicy{
			pol("a", allow, app, "", &securityv1beta1.Rule{}),
			pol("d", deny, app, "", &securityv1beta1.Rule{To: op([]string{"DELETE"}, nil, nil)}),
		}, ztunnel, get("/"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := AllowedAt(tc.policies, tc.at, tc.req); got != tc.want {
				t.Fatalf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}
