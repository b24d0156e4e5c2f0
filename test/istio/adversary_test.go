package istio_test

import (
	"context"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// TestTenantCannotWeakenVictim: a tenant who owns only its namespace names the victim's
// client workload in its intents and forges, in its own namespace, a policy that claims
// the victim's server. The victim's policy still admits the victim's client to its
// declared path only, admits the tenant only under the tenant's own identity, and is
// neither deleted nor weakened.
func TestTenantCannotWeakenVictim(t *testing.T) {
	victim := env.Namespace(t, "istio-victim")
	tenant := env.Namespace(t, "istio-tenant")
	workload(t, victim, "nginx", sidecar)
	workload(t, victim, "client", sidecar)
	workload(t, tenant, "client", sidecar)
	startOperator(t, enforcement.Options{})
	ci := env.ApplyIntents(t, victim, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes:
      name: nginx
      http:
      - {path: /client-path, methods: [GET]}
`)
	waitTarget(t, ci, enforcement.Enforced)

	server := intent.Server{Ref: intent.Ref{Namespace: victim, Name: "nginx"}}
	forged := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{
		Namespace: tenant, Name: compile.PolicyName(server),
		Labels:      map[string]string{ownership.Label: ownership.IntentsOperator, authz.ServerLabel: server.Hash()},
		Annotations: map[string]string{authz.ServerAnnotation: server.Key()},
	}}
	forged.Spec.Action = securityv1beta1.AuthorizationPolicy_ALLOW
	forged.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "nginx"}}
	forged.Spec.Rules = []*securityv1beta1.Rule{{}}
	env.Create(t, forged)
	// The tenant names the victim's client workload as its own client, and asks for
	// every path of the victim's server.
	tci := env.ApplyIntents(t, tenant, `
metadata: {name: impostor}
spec:
  workload: {name: client}
  targets:
  - kubernetes:
      name: nginx.istio-victim
      http:
      - {path: /*}
`)
	waitTarget(t, tci, enforcement.Enforced)
	waitTarget(t, ci, enforcement.Enforced)

	var got []*securityv1.AuthorizationPolicy
	suite.WaitFor(t, "the victim's policy", 30*time.Second, func() (bool, error) {
		got = policies(t, victim)
		return len(got) == 1, nil
	})
	at := authztest.Checkpoint{Kind: "sidecar", Namespace: victim, Labels: map[string]string{"app": "nginx"}}
	req := func(ns, method, path string) authztest.Request {
		return authztest.Request{Principal: principal(ns, "client"), Namespace: ns, Method: method, Path: path, Port: 80}
	}
	switch {
	case !authztest.AllowedAt(got, at, req(victim, "GET", "/client-path")):
		t.Fatal("the victim's client lost its declared call")
	case authztest.AllowedAt(got, at, req(victim, "GET", "/admin")):
		t.Fatal("the victim's client gained the tenant's paths")
	case !authztest.AllowedAt(got, at, req(tenant, "GET", "/admin")):
		t.Fatal("the tenant's own declared call is refused")
	}
	for _, r := range got[0].Spec.Rules {
		for _, f := range r.From {
			for _, p := range f.Source.Principals {
				if p != principal(victim, "client") && p != principal(tenant, "client") {
					t.Fatalf("the victim's policy admits %s", p)
				}
			}
		}
	}

	// The tenant's intents go: the victim's policy is back to the victim's client alone,
	// and was never deleted.
	uid := got[0].UID
	if err := kube.Delete(context.Background(), tci); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the tenant's rule removed", 30*time.Second, func() (bool, error) {
		got = policies(t, victim)
		return len(got) == 1 && !authztest.AllowedAt(got, at, req(tenant, "GET", "/admin")), nil
	})
	if got[0].UID != uid {
		t.Fatal("the victim's policy was deleted and created again")
	}
	if !authztest.AllowedAt(got, at, req(victim, "GET", "/client-path")) {
		t.Fatal("the victim's client lost its declared call")
	}
}

// TestProtectedServiceInShadowMode: in shadow mode, a ProtectedService enforces its
// server; with no intents, the policy admits nobody.
func TestProtectedServiceInShadowMode(t *testing.T) {
	ns := env.Namespace(t, "istio-protected")
	workload(t, ns, "nginx", sidecar)
	startOperator(t, enforcement.Options{Shadow: true})
	ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nginx"}}
	ps.Spec.Name = "nginx"
	env.Create(t, ps)
	var got []*securityv1.AuthorizationPolicy
	suite.WaitFor(t, "the protected server's policy", 30*time.Second, func() (bool, error) {
		got = policies(t, ns)
		return len(got) == 1, nil
	})
	if len(got[0].Spec.Rules) != 0 {
		t.Fatalf("a server without clients has rules: %v", got[0].Spec.Rules)
	}
	suite.WaitFor(t, "the ProtectedService's status names the policy", 30*time.Second, func() (bool, error) {
		var fresh v2beta1.ProtectedService
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ps), &fresh); err != nil {
			return false, err
		}
		for _, c := range fresh.Status.Conditions {
			if c.Type == enforcement.ConditionReady && c.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}
