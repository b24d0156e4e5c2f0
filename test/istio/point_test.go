package istio_test

import (
	"context"
	"strings"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// TestTutorial is the public Istio tutorial: client may GET /client-path on nginx,
// other-client may not; the policy goes with the intent.
func TestTutorial(t *testing.T) {
	ns := env.Namespace(t, "otterize-tutorial-istio")
	for _, w := range []string{"nginx", "client", "other-client"} {
		workload(t, ns, w, sidecar)
	}
	service(t, ns, "nginx", nil)
	writes := startOperator(t, enforcement.Options{})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes:
      name: nginx
      http:
      - {path: /client-path, methods: [GET]}
`)
	waitTarget(t, ci, enforcement.Enforced, "AuthorizationPolicy")
	got := policies(t, ns)
	if len(got) != 1 {
		t.Fatalf("%d policies, want the one of nginx", len(got))
	}
	at := authztest.Checkpoint{Kind: "sidecar", Namespace: ns, Labels: map[string]string{"app": "nginx"}}
	call := func(sa, method, path string) bool {
		return authztest.AllowedAt(got, at, authztest.Request{Principal: principal(ns, sa), Namespace: ns, Method: method, Path: path, Port: 80})
	}
	for _, c := range []struct {
		sa, method, path string
		want             bool
	}{
		{"client", "GET", "/client-path", true},
		{"client", "POST", "/client-path", false},
		{"client", "GET", "/other-path", false},
		{"other-client", "GET", "/client-path", false},
	} {
		if call(c.sa, c.method, c.path) != c.want {
			t.Errorf("%s %s %s: allowed=%v, want %v", c.sa, c.method, c.path, !c.want, c.want)
		}
	}

	// A resync with nothing changed writes nothing: a label on the namespace brings
	// every server there back to the reconciler.
	if n := policyWrites(writes, ns); n != 1 {
		t.Fatalf("%d policy writes for one server's one change, want 1: %v", n, writes.Requests())
	}
	before := got[0].ResourceVersion
	var nsObj corev1.Namespace
	if err := kube.Get(context.Background(), client.ObjectKey{Name: ns}, &nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["touched"] = "yes"
	if err := kube.Update(context.Background(), &nsObj); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if after := policies(t, ns); len(after) != 1 || after[0].ResourceVersion != before || policyWrites(writes, ns) != 1 {
		t.Fatalf("the policy was written again with nothing changed: %v", writes.Requests())
	}

	if err := kube.Delete(context.Background(), ci); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the policy removed with the intent", 30*time.Second, func() (bool, error) {
		return len(policies(t, ns)) == 0, nil
	})
}

// TestNativeSidecarAndSharedServiceAccount: a server whose proxy is a native sidecar is
// enforced; a client whose ServiceAccount another workload also runs under is enforced,
// and its status names that workload as admitted too.
func TestNativeSidecarAndSharedServiceAccount(t *testing.T) {
	ns := env.Namespace(t, "istio-native")
	workload(t, ns, "nginx", native)
	workload(t, ns, "client", sidecar)
	startOperator(t, enforcement.Options{})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: nginx}
`)
	if msg := waitTarget(t, ci, enforcement.Enforced); strings.Contains(msg, "over-permission") {
		t.Fatalf("over-permission reported with no other workload: %s", msg)
	}
	// batch starts, under client's ServiceAccount: the pod's arrival brings the server back.
	env.Create(t, deploymentUnder(ns, "batch", "client"))
	waitTarget(t, ci, enforcement.Enforced, "over-permission", "ServiceAccount client is also used by", "batch")
	got := policies(t, ns)
	at := authztest.Checkpoint{Kind: "sidecar", Namespace: ns, Labels: map[string]string{"app": "nginx"}}
	if !authztest.AllowedAt(got, at, authztest.Request{Principal: principal(ns, "client"), Namespace: ns, Method: "DELETE", Path: "/anything", Port: 80}) {
		t.Fatal("a client without http resources is refused a call")
	}
}

// deploymentUnder is a Deployment of name whose pods run under the ServiceAccount sa.
func deploymentUnder(ns, name, sa string) client.Object {
	d := tutorial.Deployment(ns, name, 0)
	d.Spec.Template.Spec.ServiceAccountName = sa
	return d
}

// TestAmbient: sidecar-less ambient namespaces, the server's Service using a waypoint.
// L7 rules land on the waypoint, ztunnel admits only the waypoint to the server; a
// client outside the mesh is reported, and a client that leaves the mesh leaves the
// policies.
func TestAmbient(t *testing.T) {
	ns := env.Namespace(t, "istio-ambient")
	clients := env.Namespace(t, "istio-ambient-clients")
	outside := env.Namespace(t, "istio-ambient-outside")
	setLabel(t, ns, authz.DataplaneModeLabel, authz.DataplaneAmbient)
	setLabel(t, clients, authz.DataplaneModeLabel, authz.DataplaneAmbient)
	workload(t, ns, "nginx", none)
	workload(t, clients, "client", none)
	workload(t, outside, "plain", none)
	service(t, ns, "nginx", map[string]string{authz.UseWaypointLabel: "waypoint"})
	startOperator(t, enforcement.Options{})
	ci := env.ApplyIntents(t, clients, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes:
      name: nginx.istio-ambient
      http:
      - {path: /api/*, methods: [GET]}
`)
	plain := env.ApplyIntents(t, outside, `
metadata: {name: plain}
spec:
  workload: {name: plain}
  targets:
  - kubernetes: {name: nginx.istio-ambient}
`)
	waitTarget(t, ci, enforcement.Enforced)
	waitTarget(t, plain, enforcement.Waiting, "outside the Istio mesh")
	got := policies(t, ns)
	if len(got) != 2 {
		t.Fatalf("%d policies, want the ztunnel one and the waypoint one", len(got))
	}
	for _, p := range got {
		if len(p.Spec.GetTargetRefs()) == 0 {
			for _, r := range p.Spec.Rules {
				if authztest.HasL7(r) {
					t.Fatalf("ztunnel policy %s holds an L7 rule: %v", p.Name, r)
				}
			}
		}
	}
	wp := authztest.Checkpoint{Kind: "waypoint", Namespace: ns, Service: "nginx"}
	zt := authztest.Checkpoint{Kind: "ztunnel", Namespace: ns, Labels: map[string]string{"app": "nginx"}}
	get := authztest.Request{Principal: principal(clients, "client"), Namespace: clients, Method: "GET", Path: "/api/items", Port: 80}
	post := get
	post.Method = "POST"
	hop := get
	hop.Principal, hop.Namespace = principal(ns, "waypoint"), ns
	switch {
	case !authztest.AllowedAt(got, wp, get):
		t.Fatal("the waypoint refuses the declared call")
	case authztest.AllowedAt(got, wp, post):
		t.Fatal("the waypoint admits an undeclared method")
	case authztest.AllowedAt(got, zt, get):
		t.Fatal("ztunnel admits the client straight to the server, past the waypoint's L7 rules")
	case !authztest.AllowedAt(got, zt, hop):
		t.Fatal("ztunnel refuses the waypoint")
	}

	// The client's namespace leaves the mesh: its pods carry no identity any more, its
	// rule goes (and with it the waypoint's policy) and the target says why.
	setLabel(t, clients, authz.DataplaneModeLabel, authz.DataplaneNone)
	waitTarget(t, ci, enforcement.Waiting, "outside the Istio mesh")
	suite.WaitFor(t, "the waypoint policy removed", 30*time.Second, func() (bool, error) {
		return len(policies(t, ns)) == 1, nil
	})
	got = policies(t, ns)
	// Through the waypoint, a call passes both it and ztunnel's check of the waypoint.
	if authztest.AllowedAt(got, wp, get) && authztest.AllowedAt(got, zt, hop) || authztest.AllowedAt(got, zt, get) {
		t.Fatal("a client out of the mesh is still admitted")
	}
}

// TestForeignPolicyLeftAlone: a policy of the server's name that the operator did not
// write is never changed, and the target says so.
func TestForeignPolicyLeftAlone(t *testing.T) {
	ns := env.Namespace(t, "istio-foreign")
	workload(t, ns, "nginx", sidecar)
	workload(t, ns, "client", sidecar)
	server := intent.Server{Ref: intent.Ref{Namespace: ns, Name: "nginx"}}
	foreign := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: compile.PolicyName(server)}}
	foreign.Spec.Action = securityv1beta1.AuthorizationPolicy_DENY
	env.Create(t, foreign)
	startOperator(t, enforcement.Options{})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: nginx}
`)
	waitTarget(t, ci, enforcement.Failed, foreign.Name, "leaving it alone")
	var after securityv1.AuthorizationPolicy
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(foreign), &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != foreign.ResourceVersion || after.Spec.Action != securityv1beta1.AuthorizationPolicy_DENY {
		t.Fatalf("the foreign policy was changed: %s", after.ResourceVersion)
	}
}

// TestShadowMode: in shadow mode no policy is written, and the target says shadow.
func TestShadowMode(t *testing.T) {
	ns := env.Namespace(t, "istio-shadow")
	workload(t, ns, "nginx", sidecar)
	workload(t, ns, "client", sidecar)
	startOperator(t, enforcement.Options{Shadow: true})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: nginx}
`)
	waitTarget(t, ci, enforcement.Shadow, "shadow mode")
	if n := len(policies(t, ns)); n != 0 {
		t.Fatalf("%d policies in shadow mode", n)
	}
}

func setLabel(t *testing.T, ns, key, value string) {
	t.Helper()
	var obj corev1.Namespace
	if err := kube.Get(context.Background(), types.NamespacedName{Name: ns}, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	obj.Labels[key] = value
	if err := kube.Update(context.Background(), &obj); err != nil {
		t.Fatal(err)
	}
}

// TestEnforcedNamespaceInShadowMode: in shadow mode, a namespace named enforced gets its
// policies, and its targets say Enforced.
func TestEnforcedNamespaceInShadowMode(t *testing.T) {
	ns := env.Namespace(t, "istio-enforced")
	workload(t, ns, "nginx", sidecar)
	workload(t, ns, "client", sidecar)
	startOperator(t, enforcement.Options{Shadow: true, EnforcedNamespaces: []string{ns}})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: nginx}
`)
	waitTarget(t, ci, enforcement.Enforced)
	if n := len(policies(t, ns)); n != 1 {
		t.Fatalf("%d policies in an enforced namespace, want 1", n)
	}
}
