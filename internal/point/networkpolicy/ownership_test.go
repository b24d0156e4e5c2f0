package networkpolicy

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// A policy is a server's own only when the operator wrote it and it records exactly that
// server: the same kind spelling, the same namespace.
func TestPolicyOwnershipIsExact(t *testing.T) {
	server := intent.Server{Ref: intent.Ref{Namespace: "b", Name: "api", Kind: "Deployment"}}
	policy := func(ns string, labels, annotations map[string]string, managers ...string) *networkingv1.NetworkPolicy {
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: compile.PolicyName(server), Labels: labels, Annotations: annotations}}
		for _, m := range managers {
			p.ManagedFields = append(p.ManagedFields, metav1.ManagedFieldsEntry{Manager: m})
		}
		return p
	}
	managed := map[string]string{ownership.Label: ownership.IntentsOperator}
	records := func(key string) map[string]string { return map[string]string{compile.ServerAnnotation: key} }
	for _, tt := range []struct {
		name string
		p    *networkingv1.NetworkPolicy
		want bool
		says string
	}{
		{"its own", policy("b", managed, records(server.Key())), true, ""},
		{"its own, label edited away", policy("b", nil, records(server.Key()), FieldManager), true, ""},
		{"a lookalike kind's", policy("b", managed, records("workload/DeploymenT/api")), false, "another server, DeploymenT:api.b"},
		{"an upper-case kind's", policy("b", managed, records("workload/DEPLOYMENT/api")), false, "another server, DEPLOYMENT:api.b"},
		{"the Service's", policy("b", managed, records("service//api")), false, "another server, service api.b"},
		{"the kind-less server's", policy("b", managed, records("workload//api")), false, "another server, api.b"},
		{"in another namespace", policy("a", managed, records(server.Key())), false, ""},
		{"its own, record edited away", policy("b", managed, nil), true, ""},
		{"recording garbage", policy("b", managed, records("workload")), false, "records no server"},
		{"recording an empty server", policy("b", managed, records("")), false, "records no server"},
		{"someone else's, with our record", policy("b", nil, records(server.Key()), "kubectl"), false, "not managed by"},
	} {
		if got := ownedBy(tt.p, server); got != tt.want {
			t.Errorf("%s: ownedBy = %v, want %v", tt.name, got, tt.want)
		}
		if tt.says == "" {
			continue
		}
		msg := takenBy(tt.p).Error()
		if !strings.Contains(msg, tt.says) || !strings.Contains(msg, tt.p.Name) {
			t.Errorf("%s: %q does not name the policy and say %q", tt.name, msg, tt.says)
		}
	}
}
