package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/status"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// A tenant that targets another namespace's server under a kind spelled in another
// letter case neither rewrites nor deletes that server's policy: the victim's policy,
// connectivity and status stay as they were, the tenant's targets fail with a reason, and
// the operator stops writing.
func TestLookalikeKindLeavesOtherNamespacesPolicyAlone(t *testing.T) {
	counter := startOperator(t, enforcement.Options{})
	victim, tenant := env.Namespace(t, "lookalike-victim"), env.Namespace(t, "lookalike-tenant")
	env.Deployment(t, victim, "api", 1, nil, nil)
	env.Deployment(t, victim, "client", 1, nil, nil)
	env.Deployment(t, tenant, "intruder", 1, nil, nil)
	own := env.ApplyIntents(t, victim, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: api, kind: Deployment}
`)
	waitReady(t, own)
	want := calls{"api." + victim: {"client." + victim}}
	assertConnectivity(t, http8080, want, victim, tenant)
	key := client.ObjectKey{Namespace: victim, Name: compile.PolicyName(intent.Server{Ref: intent.Ref{Namespace: victim, Name: "api", Kind: "Deployment"}})}
	before := policyAt(t, key)

	attack := env.ApplyIntents(t, tenant, `
metadata: {name: intruder}
spec:
  workload: {name: intruder}
  targets:
  - kubernetes: {name: api.lookalike-victim, kind: DeploymenT}
  - kubernetes: {name: api.lookalike-victim, kind: DEPLOYMENT}
`)
	suite.WaitFor(t, "the tenant's intents to have a status", 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(attack), &got)
		return err == nil && got.Status.ObservedGeneration == got.Generation && len(got.Status.Targets) == 2, err
	})
	writesSettle(t, counter)

	after := policyAt(t, key)
	if after.UID != before.UID || after.ResourceVersion != before.ResourceVersion || after.Annotations[compile.ServerAnnotation] != before.Annotations[compile.ServerAnnotation] {
		t.Errorf("the victim's policy was rewritten by the tenant's intents: before %s (uid %s, server %q), after %s (uid %s, server %q), selector now %v",
			before.ResourceVersion, before.UID, before.Annotations[compile.ServerAnnotation],
			after.ResourceVersion, after.UID, after.Annotations[compile.ServerAnnotation], after.Spec.PodSelector)
	}
	connectivityAsDeclared(t, want, victim, tenant)
	assertEnforced(t, own)
	var got v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(attack), &got); err != nil {
		t.Fatal(err)
	}
	for _, st := range got.Status.Targets {
		if st.State != string(enforcement.Failed) || !strings.Contains(st.Message, "did you mean Deployment") {
			t.Errorf("tenant's target %s: %s %q, want Failed naming the kind Deployment", st.Target, st.State, st.Message)
		}
	}
	if ok, err := hasEvent(tenant, attack.Name, enforcement.ReasonFailed); err != nil || !ok {
		t.Errorf("no Failed Event on the tenant's intents (%v)", err)
	}
	for _, p := range managedPolicies(t, victim) {
		if p.Name != key.Name {
			t.Errorf("the tenant's intents wrote policy %s (server %q) in the victim's namespace", p.Name, p.Annotations[compile.ServerAnnotation])
		}
	}

	deleteObj(t, attack)
	suite.WaitFor(t, "the tenant's intents gone", 30*time.Second, func() (bool, error) {
		var gone v2beta1.ClientIntents
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(attack), &gone)
		return err != nil, client.IgnoreNotFound(err)
	})
	writesSettle(t, counter)
	if last := policyAt(t, key); last.UID != before.UID || last.ResourceVersion != after.ResourceVersion {
		t.Errorf("deleting the tenant's intents touched the victim's policy: uid %s -> %s, version %s -> %s", before.UID, last.UID, after.ResourceVersion, last.ResourceVersion)
	}
	connectivityAsDeclared(t, want, victim, tenant)
	assertEnforced(t, own)
}

// A policy under a server's name that records another server as its owner is never
// modified: the server's targets fail naming it, with an Event, and nothing is written
// over and over.
func TestPolicyRecordedForAnotherServerLeftAlone(t *testing.T) {
	counter := startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "recorded-other")
	env.Deployment(t, ns, "api", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	server := intent.Server{Ref: intent.Ref{Namespace: ns, Name: "api", Kind: "Deployment"}}
	other := intent.Server{Ref: intent.Ref{Namespace: ns, Name: "api"}, Service: true}
	squatter := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        compile.PolicyName(server),
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator},
			Annotations: map[string]string{compile.ServerAnnotation: other.Key()},
		},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "nothing"}}},
	}
	env.Create(t, squatter)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: api, kind: Deployment}
`)
	suite.WaitFor(t, "Ready=False naming the policy of the other server", 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got)
		c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady)
		return err == nil && c != nil && c.Status == metav1.ConditionFalse && c.Reason == enforcement.ReasonFailed &&
			strings.Contains(c.Message, squatter.Name) && strings.Contains(c.Message, other.String()), err
	})
	assertReadiness(t, ci, enforcement.ConditionStalled)
	suite.WaitFor(t, "a Failed event", 30*time.Second, func() (bool, error) { return hasEvent(ns, ci.Name, enforcement.ReasonFailed) })
	writesSettle(t, counter)
	after := policyAt(t, client.ObjectKeyFromObject(squatter))
	if after.Generation != 1 || after.Annotations[compile.ServerAnnotation] != other.Key() || after.Labels[compile.ServerLabel] != "" {
		t.Fatalf("the other server's policy was modified: %+v", after.ObjectMeta)
	}

	deleteObj(t, ci)
	writesSettle(t, counter)
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(squatter), &networkingv1.NetworkPolicy{}); err != nil {
		t.Fatalf("the other server's policy is gone after the intents were deleted: %v", err)
	}
}

// After an upgrade from a release that gave case variants of a kind one policy name,
// the policy a lookalike server left under the victim's name is replaced by the victim's
// own, and nothing is written over and over.
func TestPolicyLeftByLookalikeServerIsReplaced(t *testing.T) {
	victim, tenant := env.Namespace(t, "leftover-victim"), env.Namespace(t, "leftover-tenant")
	env.Deployment(t, victim, "api", 1, nil, nil)
	env.Deployment(t, victim, "client", 1, nil, nil)
	env.Deployment(t, tenant, "intruder", 1, nil, nil)
	genuine := intent.Server{Ref: intent.Ref{Namespace: victim, Name: "api", Kind: "Deployment"}}
	lookalike := intent.Server{Ref: intent.Ref{Namespace: victim, Name: "api", Kind: "DeploymenT"}}
	// What the earlier release wrote for the lookalike: the victim's name, its own record,
	// a selector no pod matches.
	leftover := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   victim,
			Name:        compile.PolicyName(genuine),
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator, compile.ServerLabel: lookalike.Hash()},
			Annotations: map[string]string{compile.ServerAnnotation: lookalike.Key()},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: compile.PodLabels(lookalike.Ref)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	env.Create(t, leftover)
	own := env.ApplyIntents(t, victim, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: api, kind: Deployment}
`)
	env.ApplyIntents(t, tenant, `
metadata: {name: intruder}
spec:
  workload: {name: intruder}
  targets:
  - kubernetes: {name: api.leftover-victim, kind: DeploymenT}
`)
	counter := startOperator(t, enforcement.Options{})
	waitReady(t, own)
	writesSettle(t, counter)
	p := policyAt(t, client.ObjectKeyFromObject(leftover))
	if p.Annotations[compile.ServerAnnotation] != genuine.Key() || p.Labels[compile.ServerLabel] != genuine.Hash() {
		t.Errorf("policy %s records %q, want the victim's server %q", p.Name, p.Annotations[compile.ServerAnnotation], genuine.Key())
	}
	assertConnectivity(t, http8080, calls{"api." + victim: {"client." + victim}}, victim, tenant)
	assertEnforced(t, own)
	if n := len(managedPolicies(t, victim)); n != 1 {
		t.Errorf("%d policies in the victim's namespace, want 1", n)
	}
}

// writesSettle waits until the operator has written nothing for two seconds in a row,
// then checks that it stays quiet: a write loop never settles. It reports a loop and
// lets the test go on, to see what else the loop does.
func writesSettle(t *testing.T, counter *suite.WriteCounter) {
	t.Helper()
	const quiet = 2 * time.Second
	deadline := time.Now().Add(30 * time.Second)
	last := counter.Writes()
	for quietSince := time.Now(); time.Since(quietSince) < quiet; {
		if time.Now().After(deadline) {
			reqs := counter.Requests()
			t.Errorf("the operator still writes after 30s (%d writes; the last ones: %v)", len(reqs), reqs[max(0, len(reqs)-4):])
			return
		}
		time.Sleep(100 * time.Millisecond)
		if n := counter.Writes(); n != last {
			last, quietSince = n, time.Now()
		}
	}
	time.Sleep(3 * time.Second)
	if n := counter.Writes(); n != last {
		reqs := counter.Requests()
		t.Errorf("the operator wrote %d times after settling: %v", n-last, reqs[min(int(last), len(reqs)):])
	}
}

// policyAt reads a NetworkPolicy; a missing one is reported and read as empty.
func policyAt(t *testing.T, key client.ObjectKey) *networkingv1.NetworkPolicy {
	t.Helper()
	var p networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), key, &p); err != nil {
		t.Errorf("reading NetworkPolicy %s: %v", key, err)
	}
	return &p
}

// connectivityAsDeclared is assertConnectivity on port 8080 that lets the test go on.
func connectivityAsDeclared(t *testing.T, want calls, namespaces ...string) {
	t.Helper()
	wrong, matrix, err := connectivityErrors(http8080, want, namespaces...)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrong) > 0 {
		t.Errorf("connectivity differs from the declared calls:\n%s\n%s", strings.Join(wrong, "\n"), matrix)
	}
}

// assertEnforced fails unless the ClientIntents are Ready and every target Enforced.
func assertEnforced(t *testing.T, ci *v2beta1.ClientIntents) {
	t.Helper()
	var got v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
		t.Fatal(err)
	}
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, enforcement.ConditionReady) || got.Status.Enforcement != status.EnforcementEnforced {
		t.Errorf("%s/%s: Ready %v, enforcement %q, want Ready and Enforced: %+v", got.Namespace, got.Name,
			apimeta.IsStatusConditionTrue(got.Status.Conditions, enforcement.ConditionReady), got.Status.Enforcement, got.Status.Conditions)
	}
	for _, st := range got.Status.Targets {
		if st.State != string(enforcement.Enforced) {
			t.Errorf("%s/%s target %s: %s %q, want Enforced", got.Namespace, got.Name, st.Target, st.State, st.Message)
		}
	}
}

// On upgrade, a server whose policy an earlier release named otherwise (a custom kind's,
// named without a digest) gets its new policy and loses the old one; a policy of another
// server beside it is kept.
func TestPolicyUnderEarlierNameIsPruned(t *testing.T) {
	ns := env.Namespace(t, "renamed")
	env.Deployment(t, ns, "client", 1, nil, nil)
	server := intent.Server{Ref: intent.Ref{Namespace: ns, Name: "web", Kind: "Rollout"}}
	neighbour := intent.Server{Ref: intent.Ref{Namespace: ns, Name: "web", Kind: "RollOut"}}
	earlier := func(s intent.Server, name string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   ns,
				Name:        name,
				Labels:      map[string]string{ownership.Label: ownership.IntentsOperator, compile.ServerLabel: s.Hash()},
				Annotations: map[string]string{compile.ServerAnnotation: s.Key()},
			},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: compile.PodLabels(s.Ref)}},
		}
	}
	// The names the earlier release gave: the kind in lower case, no digest.
	old, kept := earlier(server, "access-to.rollout.web"), earlier(neighbour, "access-to.rollout.web-neighbour")
	// The neighbour's policy carries the server's digest label but records another server.
	kept.Labels[compile.ServerLabel] = server.Hash()
	env.Create(t, old, kept)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: web, kind: Rollout}
`)
	counter := startOperator(t, enforcement.Options{})
	waitReady(t, ci)
	writesSettle(t, counter)
	policyAt(t, client.ObjectKey{Namespace: ns, Name: compile.PolicyName(server)})
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(old), &networkingv1.NetworkPolicy{}); err == nil {
		t.Errorf("policy %s under the earlier name is still there", old.Name)
	}
	if p := policyAt(t, client.ObjectKeyFromObject(kept)); p.Generation != 1 {
		t.Errorf("another server's policy %s was modified: %+v", kept.Name, p.ObjectMeta)
	}
}
