package analysis

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// meshWorkload is a Deployment in shop whose pods run under sa with Istio's sidecar.
func meshWorkload(name, sa string) *appsv1.Deployment {
	d := tutorial.Deployment("shop", name, 80)
	d.Spec.Template.Spec.ServiceAccountName = sa
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: authz.ProxyContainer})
	return d
}

// TestIstioPlanAndExplain: with the Istio point on, the plan holds the access each
// declared request gets, and explain says which client is admitted, which is not, and
// which ServiceAccount admits other workloads too. The trust domain comes from the mesh
// configuration among the inputs.
func TestIstioPlanAndExplain(t *testing.T) {
	ci := clientIntents("shop", "client", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx",
		HTTP: []v2beta1.HTTPTarget{{Path: "/client-path", Methods: []v2beta1.HTTPMethod{"GET"}}}}})
	mesh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"}, Data: map[string]string{"mesh": "trustDomain: corp.example\n"}}
	objects := []client.Object{meshWorkload("nginx", "nginx"), meshWorkload("client", "client"), meshWorkload("batch", "client"), meshWorkload("other-client", "other-client"), ci, mesh}
	r := analyze(t, Options{Istio: &IstioOptions{MeshConfig: types.NamespacedName{Namespace: "istio-system", Name: "istio"}}}, objects...)

	if len(r.Istio) != 1 || len(r.Istio[0].Policies) != 1 {
		t.Fatalf("istio outcomes: %+v", r.Istio)
	}
	rule := r.Istio[0].Policies[0].Spec.Rules[0]
	if got := rule.From[0].Source.Principals; !slices.Equal(got, []string{"corp.example/ns/shop/sa/client"}) {
		t.Fatalf("principals %v, want the client's under the mesh configuration's trust domain", got)
	}
	var istio []Tuple
	for _, tu := range r.Tuples {
		if tu.Point == Istio {
			istio = append(istio, tu)
		}
	}
	if len(istio) != 1 || istio[0].What() != "GET /client-path" || istio[0].From.Name != "client" {
		t.Fatalf("istio tuples: %v", istio)
	}

	explain := func(from string) Explanation {
		t.Helper()
		es, err := r.Explain(Query{From: Endpoint{Namespace: "shop", Name: from}, To: Endpoint{Namespace: "shop", Name: "nginx"}, Port: "80"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Point == Istio {
				return e
			}
		}
		t.Fatalf("no Istio explanation among %+v", es)
		return Explanation{}
	}
	e := explain("client")
	if e.Verdict != Allowed || !strings.Contains(strings.Join(e.Chain, "\n"), "over-permission: ServiceAccount client is also used by Deployment:batch") {
		t.Fatalf("client: %+v", e)
	}
	if e := explain("other-client"); e.Verdict != Denied || len(e.Missing) == 0 {
		t.Fatalf("other-client: %+v", e)
	}

	// Planned from a state without the intents: the policy is created, the access added;
	// and back: deleted and removed.
	opts := Options{Istio: &IstioOptions{TrustDomain: "corp.example"}}
	before := analyze(t, opts, objects[:4]...)
	c := Diff(before, r)
	if len(c.AuthorizationPolicies) != 1 || c.AuthorizationPolicies[0].Action != Create || !slices.ContainsFunc(c.Added, func(tu Tuple) bool { return tu.Point == Istio }) {
		t.Fatalf("plan adding the intents: %+v", c)
	}
	c = Diff(r, before)
	if len(c.AuthorizationPolicies) != 1 || c.AuthorizationPolicies[0].Action != Delete || !slices.ContainsFunc(c.Removed, func(tu Tuple) bool { return tu.Point == Istio }) {
		t.Fatalf("plan removing the intents: %+v", c)
	}
	if c := Diff(r, analyze(t, opts, objects...)); len(c.AuthorizationPolicies) != 0 {
		t.Fatalf("the same policies planned as writes: %+v", c.AuthorizationPolicies)
	}

	// Without the Istio point, nothing of it is planned or explained.
	r = analyze(t, Options{}, objects...)
	if len(r.Istio) != 0 {
		t.Fatal("Istio analysed without being asked")
	}
}

// TestIstioWaitingIsNotDenied: a declared client the policy admits is not reported as
// denied while part of the path is outside the mesh: with a client pod outside the mesh
// some of its calls are refused (mixed); with a server pod outside the mesh every call
// gets through (allowed, with the warning).
func TestIstioWaitingIsNotDenied(t *testing.T) {
	ci := clientIntents("shop", "client", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx"}})
	// named gives a Deployment's pods the identity name, so that two Deployments, one in
	// the mesh and one not, make one workload.
	named := func(d *appsv1.Deployment, name string, meshed bool) *appsv1.Deployment {
		d.Spec.Template.Annotations = map[string]string{identity.WorkloadNameAnnotation: name}
		if !meshed {
			d.Spec.Template.Spec.Containers = d.Spec.Template.Spec.Containers[:1]
		}
		return d
	}
	explain := func(objects ...client.Object) Explanation {
		t.Helper()
		r := analyze(t, Options{Istio: &IstioOptions{TrustDomain: "corp.example"}}, objects...)
		es, err := r.Explain(Query{From: Endpoint{Namespace: "shop", Name: "client"}, To: Endpoint{Namespace: "shop", Name: "nginx"}, Port: "80"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Point == Istio {
				return e
			}
		}
		t.Fatalf("no Istio explanation among %+v", es)
		return Explanation{}
	}
	cases := []struct {
		name    string
		objects []client.Object
		want    string
	}{
		{"everything in the mesh", []client.Object{named(meshWorkload("nginx", "nginx"), "nginx", true), named(meshWorkload("client", "client"), "client", true)}, Allowed},
		{"client outside the mesh", []client.Object{named(meshWorkload("nginx", "nginx"), "nginx", true), named(meshWorkload("client", "client"), "client", false)}, Denied},
		{"one of the client's Deployments outside the mesh", []client.Object{named(meshWorkload("nginx", "nginx"), "nginx", true),
			named(meshWorkload("client", "client"), "client", true), named(meshWorkload("client-legacy", "client"), "client", false)}, Mixed},
		{"one of the server's Deployments outside the mesh", []client.Object{named(meshWorkload("nginx", "nginx"), "nginx", true),
			named(meshWorkload("nginx-legacy", "nginx"), "nginx", false), named(meshWorkload("client", "client"), "client", true)}, Allowed},
	}
	for _, tc := range cases {
		e := explain(append(tc.objects, ci)...)
		if e.Verdict != tc.want {
			t.Errorf("%s: verdict %s, want %s: %+v", tc.name, e.Verdict, tc.want, e)
		}
	}
}

// TestIstioAnswerWithoutNetworkAnswer: when the NetworkPolicy question cannot be answered
// (the client has no pods in the inputs), the mesh's answer is still given.
func TestIstioAnswerWithoutNetworkAnswer(t *testing.T) {
	ci := clientIntents("shop", "ghost", v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx"}})
	r := analyze(t, Options{Istio: &IstioOptions{TrustDomain: "corp.example"}}, meshWorkload("nginx", "nginx"), ci)
	es, err := r.Explain(Query{From: Endpoint{Namespace: "shop", Name: "ghost"}, To: Endpoint{Namespace: "shop", Name: "nginx"}, Port: "80"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Point != NetworkPolicy || es[0].Verdict != Unknown || es[1].Point != Istio ||
		!strings.Contains(strings.Join(es[1].Missing, " "), "no pods yet") {
		t.Fatalf("explanations: %+v", es)
	}
	r = analyze(t, Options{}, meshWorkload("nginx", "nginx"), ci)
	if _, err := r.Explain(Query{From: Endpoint{Namespace: "shop", Name: "ghost"}, To: Endpoint{Namespace: "shop", Name: "nginx"}, Port: "80"}); err == nil {
		t.Fatal("without the mesh, a question about a client without pods is answered")
	}
}
