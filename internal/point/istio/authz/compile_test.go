package authz_test

import (
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
)

const trustDomain = "example.org"

var (
	pod     = authztest.Pod
	service = authztest.Service
)

// tutorialInput is Istio's tutorial: client may GET /client-path on nginx.
func tutorialInput(serverMode string) authz.Input {
	nginx := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx", Kind: "Deployment"}}
	return authz.Input{
		TrustDomain: trustDomain,
		Server: authz.Server{
			Ref:      nginx,
			Selector: map[string]string{"app": "nginx"},
			Pods:     []corev1.Pod{pod("nginx-1", "shop", "nginx", serverMode, map[string]string{"app": "nginx"})},
		},
		Clients: []authz.Client{{
			Ref:  intent.Ref{Namespace: "shop", Name: "client"},
			Pods: []corev1.Pod{pod("client-1", "shop", "client", "sidecar", nil)},
			HTTP: []v2beta1.HTTPTarget{{Path: "/client-path", Methods: []v2beta1.HTTPMethod{"GET"}}},
		}},
	}
}

func compile(t *testing.T, in authz.Input) authz.Result {
	t.Helper()
	res, err := authz.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Policies {
		if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
			t.Fatalf("policy name %q: %v", p.Name, errs)
		}
	}
	return res
}

var (
	clientRef = intent.Ref{Namespace: "shop", Name: "client"}
	clientGET = func(path string) authztest.Request {
		return authztest.Request{Principal: trustDomain + "/ns/shop/sa/client", Namespace: "shop", Path: path, Method: "GET", Port: 80}
	}
	nginxSidecar = authztest.Checkpoint{Kind: "sidecar", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
)

func TestTutorialSidecar(t *testing.T) {
	for _, mode := range []string{"sidecar", "native", "annotated"} {
		t.Run(mode, func(t *testing.T) {
			res := compile(t, tutorialInput(mode))
			if len(res.Policies) != 1 {
				t.Fatalf("policies: %d, want 1", len(res.Policies))
			}
			p := res.Policies[0]
			if p.Name != "access-to.deployment.nginx" || p.Namespace != "shop" || p.Spec.GetSelector().GetMatchLabels()["app"] != "nginx" {
				t.Fatalf("policy %s/%s selector %v", p.Namespace, p.Name, p.Spec.GetSelector())
			}
			if got := res.Outcomes[clientRef]; got.State != enforcement.Enforced || got.Message != "" {
				t.Fatalf("outcome %+v", got)
			}
			other := clientGET("/client-path")
			other.Principal = trustDomain + "/ns/shop/sa/other-client"
			head := clientGET("/client-path")
			head.Method = "HEAD"
			for _, c := range []struct {
				req  authztest.Request
				want bool
			}{{clientGET("/client-path"), true}, {clientGET("/other"), false}, {other, false}, {head, false}} {
				if got := authztest.AllowedAt(res.Policies, nginxSidecar, c.req); got != c.want {
					t.Errorf("%+v: allowed %v, want %v", c.req, got, c.want)
				}
			}
		})
	}
}

func TestTrustDomain(t *testing.T) {
	in := tutorialInput("sidecar")
	in.TrustDomain = "corp.example"
	res := compile(t, in)
	if got := res.Policies[0].Spec.GetRules()[0].GetFrom()[0].GetSource().GetPrincipals(); len(got) != 1 || got[0] != "corp.example/ns/shop/sa/client" {
		t.Fatalf("principals %v", got)
	}
	for _, td := range []string{"", "a/b", "*"} {
		in.TrustDomain = td
		if _, err := authz.Compile(in); err == nil {
			t.Errorf("trust domain %q accepted", td)
		}
	}
}

func TestAnyRequestAndPorts(t *testing.T) {
	in := tutorialInput("sidecar")
	in.Clients[0].AnyRequest = true
	in.Server.Ports = []int32{8080, 80, 8080}
	res := compile(t, in)
	rule := res.Policies[0].Spec.GetRules()[0]
	if got := rule.GetTo()[0].GetOperation(); strings.Join(got.GetPorts(), ",") != "80,8080" || len(got.GetPaths())+len(got.GetMethods()) > 0 {
		t.Fatalf("operation %v", got)
	}
	del := clientGET("/anything")
	del.Method = "DELETE"
	if !authztest.AllowedAt(res.Policies, nginxSidecar, del) {
		t.Fatal("a client without http resources may make any request")
	}
	del.Port = 9090
	if authztest.AllowedAt(res.Policies, nginxSidecar, del) {
		t.Fatal("a port the server does not serve is admitted")
	}
}

func TestMethodsGroupedPerPath(t *testing.T) {
	in := tutorialInput("sidecar")
	in.Clients[0].HTTP = []v2beta1.HTTPTarget{
		{Path: "/a", Methods: []v2beta1.HTTPMethod{"POST", "GET"}},
		{Path: "/b", Methods: []v2beta1.HTTPMethod{"GET", "POST"}},
		{Path: "/c*"},
		{Path: "/d", Methods: []v2beta1.HTTPMethod{"HEAD"}},
	}
	res := compile(t, in)
	var got []string
	for _, to := range res.Policies[0].Spec.GetRules()[0].GetTo() {
		got = append(got, strings.Join(to.GetOperation().GetMethods(), ",")+":"+strings.Join(to.GetOperation().GetPaths(), ","))
	}
	if want := ":/c*|GET,POST:/a,/b|HEAD:/d"; strings.Join(got, "|") != want {
		t.Fatalf("operations %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		edit      func(*authz.Input)
		policies  int
		state     enforcement.State
		mentions  string
		admitted  bool
		checkWith authztest.Checkpoint
	}{
		{"client outside the mesh", func(in *authz.Input) {
			in.Clients[0].Pods = []corev1.Pod{pod("client-1", "shop", "client", "none", nil)}
		}, 1, enforcement.Waiting, "outside the Istio mesh", false, nginxSidecar},
		{"client opted out of ambient", func(in *authz.Input) {
			in.NamespaceLabels = map[string]map[string]string{"shop": {authz.DataplaneModeLabel: authz.DataplaneAmbient}}
			in.Clients[0].Pods = []corev1.Pod{pod("client-1", "shop", "client", "optout", nil)}
		}, 1, enforcement.Waiting, "client-1", false, nginxSidecar},
		{"client without pods", func(in *authz.Input) { in.Clients[0].Pods = nil }, 1, enforcement.Waiting, "no pods yet", false, nginxSidecar},
		{"server outside the mesh", func(in *authz.Input) {
			in.Server.Pods = []corev1.Pod{pod("nginx-1", "shop", "nginx", "none", map[string]string{"app": "nginx"})}
		}, 0, enforcement.NotEnforced, "no pod of", true, nginxSidecar},
		{"server partly outside the mesh", func(in *authz.Input) {
			in.Server.Pods = append(in.Server.Pods, pod("nginx-2", "shop", "nginx", "none", map[string]string{"app": "nginx"}))
		}, 1, enforcement.Waiting, "nginx-2", true, nginxSidecar},
		{"server without pods", func(in *authz.Input) { in.Server.Pods = nil }, 1, enforcement.Waiting, "no pods yet", true, nginxSidecar},
		{"server that cannot be selected", func(in *authz.Input) { in.Server.Selector = nil }, 0, enforcement.NotEnforced, "cannot be selected", true, nginxSidecar},
		{"shared ServiceAccount", func(in *authz.Input) {
			in.Clients[0].SharedWith = map[string][]identity.Identity{"client": {{Namespace: "shop", Name: "batch", Kind: "CronJob"}}}
		}, 1, enforcement.Enforced, "over-permission: ServiceAccount client is also used by CronJob:batch", true, nginxSidecar},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tutorialInput("sidecar")
			tc.edit(&in)
			res := compile(t, in)
			if len(res.Policies) != tc.policies {
				t.Fatalf("policies: %d, want %d", len(res.Policies), tc.policies)
			}
			got := res.Outcomes[clientRef]
			if got.State != tc.state || !strings.Contains(got.Message, tc.mentions) {
				t.Fatalf("outcome %+v, want %s mentioning %q", got, tc.state, tc.mentions)
			}
			if tc.state == enforcement.Enforced && strings.Contains(tc.mentions, "over-permission") && !strings.Contains(got.Message, "ServiceAccount of its own") {
				t.Fatalf("the message does not say how to fix it: %s", got.Message)
			}
			if a := authztest.AllowedAt(res.Policies, tc.checkWith, clientGET("/client-path")); a != tc.admitted {
				t.Fatalf("declared call admitted = %v, want %v", a, tc.admitted)
			}
		})
	}
}

// ambientInput is the tutorial in an ambient namespace, nginx behind a Service that uses
// waypoint (empty: none), and a second client allowed any request.
func ambientInput(waypoint string) authz.Input {
	in := tutorialInput("ambient")
	in.NamespaceLabels = map[string]map[string]string{"shop": {authz.DataplaneModeLabel: authz.DataplaneAmbient}}
	in.Server.Services = []corev1.Service{service("nginx", "shop", waypoint)}
	in.Clients[0].Pods = []corev1.Pod{pod("client-1", "shop", "client", "", nil)}
	in.Clients = append(in.Clients, authz.Client{
		Ref:        intent.Ref{Namespace: "shop", Name: "probe"},
		Pods:       []corev1.Pod{pod("probe-1", "shop", "probe", "", nil)},
		AnyRequest: true,
	})
	return in
}

func TestAmbientWithWaypoint(t *testing.T) {
	res := compile(t, ambientInput("waypoint"))
	if len(res.Policies) != 2 {
		t.Fatalf("policies: %d, want 2", len(res.Policies))
	}
	var onPods, onWaypoint *securityv1.AuthorizationPolicy
	for _, p := range res.Policies {
		if p.Spec.GetSelector() != nil {
			onPods = p
		} else {
			onWaypoint = p
		}
	}
	if onPods == nil || onWaypoint == nil || onPods.Name == onWaypoint.Name {
		t.Fatalf("want one policy on the pods and one on the waypoint: %v", res.Policies)
	}
	if refs := onWaypoint.Spec.GetTargetRefs(); len(refs) != 1 || refs[0].GetKind() != "Service" || refs[0].GetName() != "nginx" {
		t.Fatalf("waypoint policy targets %v", refs)
	}
	for _, r := range onPods.Spec.GetRules() {
		if authztest.HasL7(r) {
			t.Fatalf("an L7 field in the policy ztunnel enforces: %v", r)
		}
	}
	wp := authztest.Checkpoint{Kind: "waypoint", Namespace: "shop", Service: "nginx"}
	zt := authztest.Checkpoint{Kind: "ztunnel", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
	viaWaypoint := func(r authztest.Request) bool {
		hop := r
		hop.Principal, hop.Namespace = trustDomain+"/ns/shop/sa/waypoint", "shop"
		return authztest.AllowedAt(res.Policies, wp, r) && authztest.AllowedAt(res.Policies, zt, hop)
	}
	probe := clientGET("/anything")
	probe.Principal = trustDomain + "/ns/shop/sa/probe"
	if !viaWaypoint(clientGET("/client-path")) || viaWaypoint(clientGET("/other")) || !viaWaypoint(probe) {
		t.Fatal("through the waypoint, calls are not what was declared")
	}
	if authztest.AllowedAt(res.Policies, zt, clientGET("/client-path")) {
		t.Fatal("the L7 client reaches the pods directly, past its path rules")
	}
	if !authztest.AllowedAt(res.Policies, zt, probe) {
		t.Fatal("the L4 client cannot reach the pods directly")
	}
	if got := res.Outcomes[clientRef]; got.State != enforcement.Enforced {
		t.Fatalf("outcome %+v", got)
	}
}

func TestAmbientWithoutWaypoint(t *testing.T) {
	res := compile(t, ambientInput(""))
	if len(res.Policies) != 1 {
		t.Fatalf("policies: %d, want 1", len(res.Policies))
	}
	got := res.Outcomes[clientRef]
	if got.State != enforcement.Waiting || !strings.Contains(got.Message, authz.UseWaypointLabel) {
		t.Fatalf("outcome %+v", got)
	}
	zt := authztest.Checkpoint{Kind: "ztunnel", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
	if authztest.AllowedAt(res.Policies, zt, clientGET("/client-path")) {
		t.Fatal("ztunnel admits every path of a client that declared paths")
	}
	if got := res.Outcomes[intent.Ref{Namespace: "shop", Name: "probe"}]; got.State != enforcement.Enforced {
		t.Fatalf("L4 client outcome %+v", got)
	}
}

func TestNamespaceWaypointAndOptOut(t *testing.T) {
	ns := map[string]string{authz.UseWaypointLabel: "wp", authz.UseWaypointNamespaceLabel: "mesh"}
	if w, ok := authz.WaypointOf(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "shop"}}, ns); !ok || w != (authz.Waypoint{Namespace: "mesh", Name: "wp"}) {
		t.Fatalf("namespace waypoint: %v %v", w, ok)
	}
	optOut := service("s", "shop", authz.WaypointNone)
	if _, ok := authz.WaypointOf(&optOut, ns); ok {
		t.Fatal("a Service labelled none uses its namespace's waypoint")
	}
}

func TestPodMode(t *testing.T) {
	ambientNS := map[string]string{authz.DataplaneModeLabel: authz.DataplaneAmbient}
	completed := pod("p", "ns", "sa", "", nil)
	completed.Spec.InitContainers = []corev1.Container{{Name: authz.ProxyContainer}}
	cases := []struct {
		pod  corev1.Pod
		ns   map[string]string
		want authz.Mode
	}{
		{pod("p", "ns", "sa", "sidecar", nil), nil, authz.Sidecar},
		{pod("p", "ns", "sa", "native", nil), nil, authz.Sidecar},
		{pod("p", "ns", "sa", "annotated", nil), nil, authz.Sidecar},
		{completed, nil, authz.Outside},
		{pod("p", "ns", "sa", "", nil), nil, authz.Outside},
		{pod("p", "ns", "sa", "ambient", nil), nil, authz.Ambient},
		{pod("p", "ns", "sa", "", nil), ambientNS, authz.Ambient},
		{pod("p", "ns", "sa", "optout", nil), ambientNS, authz.Outside},
		{pod("p", "ns", "sa", "sidecar", nil), ambientNS, authz.Sidecar},
	}
	for i, tc := range cases {
		if got := authz.PodMode(&tc.pod, tc.ns); got != tc.want {
			t.Errorf("case %d: %s, want %s", i, got, tc.want)
		}
	}
}

func TestNamesBoundedAndDistinct(t *testing.T) {
	long := strings.Repeat("a", 253)
	seen := map[string]intent.Server{}
	for _, s := range []intent.Server{
		{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true},
		{Ref: intent.Ref{Namespace: "shop", Name: "nginx", Kind: "Deployment"}},
		{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}},
		{Ref: intent.Ref{Namespace: "shop", Name: long, Kind: "StatefulSet"}},
		{Ref: intent.Ref{Namespace: "shop", Name: long + "b", Kind: "StatefulSet"}},
	} {
		in := ambientInput("waypoint")
		in.Server.Ref = s
		for _, p := range compile(t, in).Policies {
			if other, dup := seen[p.Name]; dup {
				t.Fatalf("%s and %s share the name %s", other, s, p.Name)
			}
			seen[p.Name] = s
			if p.Annotations[authz.ServerAnnotation] != s.Key() || !authz.Owned(p, s) {
				t.Fatalf("policy %s does not record its server", p.Name)
			}
		}
	}
}

func TestUpToDateAndOwned(t *testing.T) {
	desired := compile(t, tutorialInput("sidecar")).Policies[0]
	again := compile(t, tutorialInput("sidecar")).Policies[0]
	if !authz.UpToDate(desired, again) {
		t.Fatal("the same input compiles to a different policy")
	}
	existing := again.DeepCopy()
	existing.Labels["team"] = "x"
	existing.ResourceVersion = "7"
	if !authz.UpToDate(desired, existing) {
		t.Fatal("labels of other tools force a rewrite")
	}
	changed := tutorialInput("sidecar")
	changed.Clients[0].HTTP[0].Methods = []v2beta1.HTTPMethod{"GET", "HEAD"}
	if authz.UpToDate(desired, compile(t, changed).Policies[0]) {
		t.Fatal("a second method is not a change")
	}
	moved := tutorialInput("sidecar")
	moved.Clients[0].Pods[0].Spec.ServiceAccountName = "renamed"
	if authz.UpToDate(desired, compile(t, moved).Policies[0]) {
		t.Fatal("a new ServiceAccount is not a change")
	}
	stolen := existing.DeepCopy()
	stolen.Annotations[authz.ServerAnnotation] = "service//nginx"
	if authz.Owned(stolen, tutorialInput("sidecar").Server.Ref) || authz.UpToDate(desired, stolen) {
		t.Fatal("a policy recording another server counts as this one's")
	}
}
