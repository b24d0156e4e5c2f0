package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
)

// cluster answers facts.Facts and authz.MeshFacts from objects in memory, as the CLI
// does from a snapshot. A pod's identity is the Deployment named by its app label.
type cluster struct {
	pods       []corev1.Pod
	services   []corev1.Service
	intents    []v2beta1.ClientIntents
	namespaces map[string]map[string]string
	mesh       string
}

func (c *cluster) identity(p corev1.Pod) identity.Identity {
	return identity.Identity{Namespace: p.Namespace, Name: p.Labels["app"], Kind: "Deployment"}
}

func (c *cluster) meta(p corev1.Pod) facts.Pod {
	return facts.Pod{Meta: &metav1.PartialObjectMetadata{ObjectMeta: p.ObjectMeta}, Identity: c.identity(p)}
}

func (c *cluster) IntentsTargeting(_ context.Context, s intent.Server) ([]v2beta1.ClientIntents, error) {
	var out []v2beta1.ClientIntents
	for _, ci := range c.intents {
		if slices.Contains(intent.Servers(&ci), s) {
			out = append(out, ci)
		}
	}
	return out, nil
}

func (c *cluster) ProtectedNamed(context.Context, string, string) ([]v2beta1.ProtectedService, error) {
	return nil, nil
}

func (c *cluster) NamespaceReady(_ context.Context, ns string) (bool, error) {
	_, ok := c.namespaces[ns]
	return ok, nil
}

func (c *cluster) Service(_ context.Context, ns, name string) (*corev1.Service, error) {
	for i := range c.services {
		if c.services[i].Namespace == ns && c.services[i].Name == name {
			return &c.services[i], nil
		}
	}
	return nil, nil
}

func (c *cluster) PodsMatching(_ context.Context, ns string, sel map[string]string) ([]facts.Pod, error) {
	var out []facts.Pod
	for _, p := range c.pods {
		if p.Namespace == ns && labels.SelectorFromSet(sel).Matches(labels.Set(p.Labels)) {
			out = append(out, c.meta(p))
		}
	}
	return out, nil
}

func (c *cluster) Workloads(_ context.Context, ns, name string) ([]facts.Workload, error) {
	for _, p := range c.pods {
		if p.Namespace == ns && p.Labels["app"] == name {
			return []facts.Workload{{Kind: "Deployment", Name: name, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}, nil
		}
	}
	return nil, nil
}

func (c *cluster) PodsOf(ctx context.Context, ref intent.Ref, _ []facts.Workload) ([]facts.Pod, error) {
	return c.PodsMatching(ctx, ref.Namespace, map[string]string{"app": ref.Name})
}

func (c *cluster) PodSpecs(_ context.Context, ns string, names []string) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, p := range c.pods {
		if p.Namespace == ns && slices.Contains(names, p.Name) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (c *cluster) NamespaceLabels(_ context.Context, ns string) (map[string]string, error) {
	return c.namespaces[ns], nil
}

func (c *cluster) ServicesSelecting(_ context.Context, ns string, podLabels map[string]string) ([]corev1.Service, error) {
	var out []corev1.Service
	for _, s := range c.services {
		if s.Namespace == ns && len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (c *cluster) PodsWithServiceAccount(_ context.Context, ns, sa string) ([]facts.Pod, error) {
	var out []facts.Pod
	for _, p := range c.pods {
		if p.Namespace == ns && p.Spec.ServiceAccountName == sa {
			out = append(out, c.meta(p))
		}
	}
	return out, nil
}

func (c *cluster) MeshConfig(context.Context) (string, bool, error) {
	return c.mesh, c.mesh != "", nil
}

// tutorialCluster is Istio's tutorial: nginx behind its Service (80 -> 8080), client
// allowed GET /client-path, other-client declaring nothing, and a batch job that shares
// client's ServiceAccount.
func tutorialCluster() *cluster {
	nginxSvc := service("nginx", "shop", "")
	nginxSvc.Spec.Selector = map[string]string{"app": "nginx"}
	nginxSvc.Spec.Ports = []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}
	ci := v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "shop"}}
	ci.Spec.Workload.Name = "client"
	ci.Spec.Targets = []v2beta1.Target{
		{Service: &v2beta1.ServiceTarget{Name: "nginx", HTTP: []v2beta1.HTTPTarget{{Path: "/client-path", Methods: []v2beta1.HTTPMethod{"GET"}}}}},
		{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx"}},
	}
	return &cluster{
		pods: []corev1.Pod{
			pod("nginx-1", "shop", "nginx", "sidecar", map[string]string{"app": "nginx"}),
			pod("client-1", "shop", "client", "native", map[string]string{"app": "client"}),
			pod("batch-1", "shop", "client", "sidecar", map[string]string{"app": "batch"}),
			pod("other-1", "shop", "other", "sidecar", map[string]string{"app": "other-client"}),
		},
		services:   []corev1.Service{nginxSvc},
		intents:    []v2beta1.ClientIntents{ci},
		namespaces: map[string]map[string]string{"shop": {}},
		mesh:       "defaultConfig:\n  holdApplicationUntilProxyStarts: true\ntrustDomain: corp.example\n",
	}
}

func TestGatherServiceTarget(t *testing.T) {
	c := tutorialCluster()
	server := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true}
	in, err := authz.Planner{Facts: c, Mesh: c}.Gather(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	if in.TrustDomain != "corp.example" || in.Server.Selector["app"] != "nginx" || !slices.Equal(in.Server.Ports, []int32{8080}) || len(in.Server.Pods) != 1 {
		t.Fatalf("server input %+v (trust domain %q)", in.Server, in.TrustDomain)
	}
	if len(in.Clients) != 1 {
		t.Fatalf("clients %+v", in.Clients)
	}
	cl := in.Clients[0]
	if cl.AnyRequest || len(cl.HTTP) != 1 || len(cl.Pods) != 1 || cl.Pods[0].Name != "client-1" {
		t.Fatalf("client %+v", cl)
	}
	if got := cl.SharedWith["client"]; len(got) != 1 || got[0].Name != "batch" {
		t.Fatalf("shared with %v", cl.SharedWith)
	}
	res, err := authz.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	sidecar := authztest.Checkpoint{Kind: "sidecar", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
	get := authztest.Request{Principal: "corp.example/ns/shop/sa/client", Namespace: "shop", Path: "/client-path", Method: "GET", Port: 8080}
	other := get
	other.Principal = "corp.example/ns/shop/sa/other"
	if !authztest.AllowedAt(res.Policies, sidecar, get) || authztest.AllowedAt(res.Policies, sidecar, other) {
		t.Fatal("the tutorial's client and other-client are not told apart")
	}
	if out := res.Outcomes[cl.Ref]; out.State != enforcement.Enforced || !strings.Contains(out.Message, "Deployment:batch") {
		t.Fatalf("outcome %+v", out)
	}
}

func TestGatherWorkloadTarget(t *testing.T) {
	c := tutorialCluster()
	server := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}}
	in, err := authz.Planner{Facts: c, Mesh: c, TrustDomain: "configured.example"}.Gather(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	if in.TrustDomain != "configured.example" {
		t.Fatalf("the configured trust domain does not win: %q", in.TrustDomain)
	}
	if len(in.Server.Services) != 1 || in.Server.Services[0].Name != "nginx" || in.Server.Selector["app"] != "nginx" || len(in.Server.Ports) != 0 {
		t.Fatalf("server input %+v", in.Server)
	}
	if len(in.Clients) != 1 || !in.Clients[0].AnyRequest {
		t.Fatalf("a kubernetes target without http allows any request: %+v", in.Clients)
	}
}

func TestTrustDomainOf(t *testing.T) {
	for _, tc := range []struct {
		mesh, want string
		err        bool
	}{
		{"trustDomain: corp.example\n", "corp.example", false},
		{"defaultConfig: {}\n", authz.IstioDefaultTrustDomain, false},
		{"", authz.IstioDefaultTrustDomain, false},
		{"trustDomain: [", "", true},
	} {
		got, err := authz.TrustDomainOf(tc.mesh)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("TrustDomainOf(%q) = %q, %v", tc.mesh, got, err)
		}
	}
	c := tutorialCluster()
	c.mesh = ""
	in, err := authz.Planner{Facts: c, Mesh: c}.Gather(context.Background(), intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authz.Compile(in); err == nil {
		t.Fatal("without a mesh configuration or a configured trust domain, a policy is written with a guessed one")
	}
}

// TestGatherAmbient: a sidecar-less namespace whose waypoint is named by a namespace
// label, and a client in another ambient namespace: the namespaces' labels are gathered,
// L7 rules land on the waypoint, the pods admit only the waypoint, and a client outside
// the mesh is reported.
func TestGatherAmbient(t *testing.T) {
	c := tutorialCluster()
	c.namespaces = map[string]map[string]string{
		"shop": {authz.DataplaneModeLabel: authz.DataplaneAmbient, authz.UseWaypointLabel: "waypoint"},
		"web":  {authz.DataplaneModeLabel: authz.DataplaneAmbient},
	}
	c.pods[0] = pod("nginx-1", "shop", "nginx", "", map[string]string{"app": "nginx"})
	c.pods[1] = pod("client-1", "web", "client", "", map[string]string{"app": "client"})
	c.intents[0].Namespace = "web"
	c.intents[0].Spec.Targets = c.intents[0].Spec.Targets[:1]
	c.intents[0].Spec.Targets[0].Service.Name = "nginx.shop"
	bare := v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop"}}
	bare.Spec.Workload.Name = "other-client"
	bare.Spec.Targets = []v2beta1.Target{{Service: &v2beta1.ServiceTarget{Name: "nginx", HTTP: []v2beta1.HTTPTarget{{Path: "/"}}}}}
	c.intents = append(c.intents, bare)
	c.pods[3] = pod("other-1", "shop", "other", "optout", map[string]string{"app": "other-client"})

	server := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true}
	in, err := authz.Planner{Facts: c, Mesh: c}.Gather(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	if in.NamespaceLabels["web"][authz.DataplaneModeLabel] != authz.DataplaneAmbient {
		t.Fatalf("the client's namespace labels are not gathered: %v", in.NamespaceLabels)
	}
	res, err := authz.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Policies) != 2 {
		t.Fatalf("policies %d, want the ztunnel one and the waypoint one", len(res.Policies))
	}
	wp := authztest.Checkpoint{Kind: "waypoint", Namespace: "shop", Service: "nginx"}
	zt := authztest.Checkpoint{Kind: "ztunnel", Namespace: "shop", Labels: map[string]string{"app": "nginx"}}
	get := authztest.Request{Principal: "corp.example/ns/web/sa/client", Namespace: "web", Path: "/client-path", Method: "GET", Port: 8080}
	hop := authztest.Request{Principal: "corp.example/ns/shop/sa/waypoint", Namespace: "shop", Path: get.Path, Method: get.Method, Port: 8080}
	if !authztest.AllowedAt(res.Policies, wp, get) || !authztest.AllowedAt(res.Policies, zt, hop) || authztest.AllowedAt(res.Policies, zt, get) {
		t.Fatal("the L7 rules are not on the waypoint, or the pods admit more than it")
	}
	if out := res.Outcomes[intent.Ref{Namespace: "web", Name: "client"}]; out.State != enforcement.Enforced {
		t.Fatalf("client outcome %+v", out)
	}
	if out := res.Outcomes[intent.Ref{Namespace: "shop", Name: "other-client"}]; out.State != enforcement.Waiting || !strings.Contains(out.Message, "other-1") {
		t.Fatalf("a client outside the mesh is not reported: %+v", out)
	}
}
