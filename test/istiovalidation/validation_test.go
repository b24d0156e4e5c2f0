// Package istiovalidation checks the operator's Istio AuthorizationPolicies with Istio's
// own validation. It is a module of its own so that istio.io/istio, which the check
// needs and the operator does not, stays out of the operator's dependencies.
package istiovalidation

import (
	"math/rand/v2"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/validation"
	corev1 "k8s.io/api/core/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
)

// TestEveryPolicyPassesIstioValidation compiles random servers and clients in every mesh
// scenario and runs each policy through validation.ValidateAuthorizationPolicy, which
// istiod's webhook applies; warnings count as failures too, since Istio gives them for
// policies that do not do what they seem to.
func TestEveryPolicyPassesIstioValidation(t *testing.T) {
	scenarios := map[string]int{}
	policies := 0
	for seed := uint64(0); seed < 500; seed++ {
		in, scenario := authztest.RandomInput(rand.New(rand.NewPCG(seed, 17)), "corp.example")
		res, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		scenarios[scenario]++
		for _, p := range res.Policies {
			policies++
			warnings, err := validation.ValidateAuthorizationPolicy(configOf(p))
			if err != nil || warnings != nil {
				t.Fatalf("seed %d (%s): policy %s refused by Istio: %v (warnings: %v)\n%v", seed, scenario, p.Name, err, warnings, p.Spec.String())
			}
		}
	}
	if len(scenarios) != 3 || policies < 500 {
		t.Fatalf("too few cases: %v, %d policies", scenarios, policies)
	}
}

// TestTemplatedPathsAgreeWithIstio: a path authz.ValidatePath accepts, Istio accepts in
// a policy, and the templates it refuses, Istio refuses too. (ValidatePath is stricter
// than Istio on one point: a "*" inside a path without templates, which Istio would
// read literally, is refused as a likely mistake.)
func TestTemplatedPathsAgreeWithIstio(t *testing.T) {
	for _, tc := range []struct {
		path   string
		refuse bool
	}{
		{"/users/{*}/orders", false},
		{"/files/{**}", false},
		{"/files/{**}/x.txt", false},
		{"/{*}/{*}/{**}", false},
		{"/api/*", false},
		{"/client-path", false},
		{"/files/{**}/{*}", true},
		{"/files/{**}/{**}", true},
		{"/files/{id}", true},
		{"/files/x{*}", true},
		{"/files/{*}/a*b", true},
		{"/files//{*}", true},
	} {
		if err := authz.ValidatePath(tc.path); (err != nil) != tc.refuse {
			t.Errorf("ValidatePath(%q) = %v, want refused=%v", tc.path, err, tc.refuse)
		}
		in := authz.Input{TrustDomain: "corp.example", Server: authz.Server{
			Ref:      intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}, Service: true},
			Selector: map[string]string{"app": "nginx"},
			Pods:     []corev1.Pod{authztest.Pod("nginx-1", "shop", "nginx", "sidecar", nil)},
		}, Clients: []authz.Client{{
			Ref:  intent.Ref{Namespace: "shop", Name: "client"},
			Pods: []corev1.Pod{authztest.Pod("client-1", "shop", "client", "sidecar", nil)},
			HTTP: []v2beta1.HTTPTarget{{Path: tc.path, Methods: []v2beta1.HTTPMethod{"GET"}}},
		}}}
		res, err := authz.Compile(in)
		if err != nil || len(res.Policies) != 1 {
			t.Fatalf("%q: %v, %d policies", tc.path, err, len(res.Policies))
		}
		_, err = validation.ValidateAuthorizationPolicy(configOf(res.Policies[0]))
		if (err != nil) != tc.refuse {
			t.Errorf("Istio on %q: %v, want refused=%v", tc.path, err, tc.refuse)
		}
	}
}

func configOf(p *securityv1.AuthorizationPolicy) config.Config {
	return config.Config{
		Meta: config.Meta{GroupVersionKind: gvk.AuthorizationPolicy, Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations},
		Spec: &p.Spec,
	}
}
