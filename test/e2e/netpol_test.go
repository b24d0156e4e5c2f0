package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/status"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

var http8080 = connectivity.Port{Number: 8080, Name: "http"}

// Given the public tutorial, when client declares its call to the server Service, then
// client reaches server, client-other does not, and one policy protects server.
func TestTutorialClientAllowedClientOtherDenied(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ctx := context.Background()
	if err := tutorial.Create(ctx, kube); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tutorial.Namespace}}) })
	port := connectivity.Port{Number: 80, Name: "http"}
	assertConnectivity(t, port, calls{}, tutorial.Namespace)

	ci := tutorial.Intents()
	env.Create(t, ci)
	got := waitReady(t, ci)
	if got.Status.Enforcement != status.EnforcementEnforced || !got.Status.UpToDate || got.Status.TargetCount != 1 {
		t.Errorf("status = %+v", got.Status)
	}
	if n := len(managedPolicies(t, tutorial.Namespace)); n != 1 {
		t.Fatalf("%d managed policies, want 1", n)
	}
	ns := "." + tutorial.Namespace
	assertConnectivity(t, port, calls{"server" + ns: {"client" + ns}}, tutorial.Namespace)
	// The Service forwards to port 80 only: even the declared client gets nothing else.
	assertConnectivity(t, connectivity.Port{Number: 9090, Name: "admin"}, calls{"server" + ns: {}}, tutorial.Namespace)
}

// Given clients in two namespaces, only the one that declared a call across namespaces
// reaches the server; the same-named workload in a third namespace does not.
func TestCrossNamespaceIntents(t *testing.T) {
	startOperator(t, enforcement.Options{})
	srv, a, b := env.Namespace(t, "xns-server"), env.Namespace(t, "xns-a"), env.Namespace(t, "xns-b")
	env.Deployment(t, srv, "api", 1, nil, nil)
	env.Deployment(t, a, "frontend", 1, nil, nil)
	env.Deployment(t, b, "frontend", 1, nil, nil)
	env.Deployment(t, srv, "worker", 1, nil, nil)
	ci := env.ApplyIntents(t, a, `
metadata: {name: frontend}
spec:
  workload: {name: frontend}
  targets:
  - kubernetes: {name: api.xns-server}
`)
	waitReady(t, ci)
	assertConnectivity(t, http8080, calls{"api.xns-server": {"frontend.xns-a"}}, srv, a, b)
}

// Service targets allow the Service's target ports, numeric or named, and nothing else.
func TestServiceTargetPorts(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "svc-ports")
	env.Deployment(t, ns, "web", 1, nil, nil)
	env.Deployment(t, ns, "db", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	service(t, ns, "web", map[string]string{"app": "web"}, 80, intstr.FromString("http"))
	service(t, ns, "db", map[string]string{"app": "db"}, 5432, intstr.FromInt32(8080))
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - service: {name: web}
  - service: {name: db}
`)
	waitReady(t, ci)
	allowed := calls{"web.svc-ports": {"client.svc-ports"}, "db.svc-ports": {"client.svc-ports"}}
	assertConnectivity(t, http8080, allowed, ns)
	denied := calls{"web.svc-ports": {}, "db.svc-ports": {}}
	assertConnectivity(t, connectivity.Port{Number: 9000, Name: "metrics"}, denied, ns)

	var web networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "access-to.service.web"}, &web); err != nil {
		t.Fatal(err)
	}
	if p := web.Spec.Ingress[0].Ports; len(p) != 1 || p[0].Port.StrVal != "http" {
		t.Fatalf("web policy ports = %+v, want the named port http", p)
	}
}

// A kinded workload target protects only the workload of that kind.
func TestKindedWorkloadTarget(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "kinded")
	env.Deployment(t, ns, "store", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	env.Deployment(t, ns, "other", 1, nil, nil)
	// A CronJob-like bare pod named differently but labelled like the Deployment's pods.
	barePod(t, ns, "store-debug", map[string]string{"app": "store"}, nil)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client, kind: Deployment}
  targets:
  - kubernetes: {name: store, kind: Deployment}
`)
	waitReady(t, ci)
	// The bare pod shares the Deployment's labels, so the operator selects by its own
	// labels: the bare pod is neither protected nor mistaken for the server.
	assertConnectivity(t, http8080, calls{"store.kinded": {"client.kinded"}}, ns)
	if n := len(managedPolicies(t, ns)); n != 1 {
		t.Fatalf("%d policies, want 1", n)
	}
	if p := managedPolicies(t, ns)[0]; p.Name != "access-to.deployment.store" {
		t.Fatalf("policy %s", p.Name)
	}
}

// A workload sharing the declared client's labels is not let in with it.
func TestLookalikeClientStaysDenied(t *testing.T) {
	counter := startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "lookalike")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	// Same app=client label as the declared client's pods, different workload.
	barePod(t, ns, "impostor", map[string]string{"app": "client"}, nil)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
`)
	waitReady(t, ci)
	assertConnectivity(t, http8080, calls{"server.lookalike": {"client.lookalike"}}, ns)

	// Once the impostor is gone the Deployment's selector is exact again: the operator
	// switches back to it and removes the labels it added.
	mark := len(counter.Requests())
	deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "impostor"}})
	suite.WaitFor(t, "operator labels removed from client pods", 30*time.Second, func() (bool, error) {
		return noOperatorLabels(ns)
	})
	assertConnectivity(t, http8080, calls{"server.lookalike": {"client.lookalike"}}, ns)
	// Make before break: the policy stops selecting by the labels before they go, so the
	// declared client is admitted at every moment.
	lastPolicy, firstUnlabel := -1, -1
	for i, r := range counter.Requests()[mark:] {
		switch {
		case strings.Contains(r, "/networkpolicies/"):
			lastPolicy = i
		case strings.HasPrefix(r, "PATCH") && strings.Contains(r, "/pods/client-") && firstUnlabel < 0:
			firstUnlabel = i
		}
	}
	if lastPolicy < 0 || firstUnlabel < 0 || firstUnlabel < lastPolicy {
		t.Fatalf("labels removed before the policy relying on them was rewritten: %v", counter.Requests()[mark:])
	}
}

// Pods whose identity comes from the workload-name annotation are selected through labels
// the operator adds, and those labels go when the intents go.
func TestAnnotationOverriddenIdentity(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "annotated")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "checkout-v2", 2, map[string]string{identity.WorkloadNameAnnotation: "checkout"}, nil)
	barePod(t, ns, "legacy-checkout", map[string]string{"app": "legacy"}, map[string]string{identity.ServiceNameAnnotation: "checkout"})
	env.Deployment(t, ns, "other", 1, nil, nil)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: checkout}
spec:
  workload: {name: checkout}
  targets:
  - kubernetes: {name: server}
`)
	waitReady(t, ci)
	assertConnectivity(t, http8080, calls{"server.annotated": {"checkout.annotated"}}, ns)

	deleteObj(t, ci)
	suite.WaitFor(t, "policy removed", 30*time.Second, func() (bool, error) { return len(managedPolicies(t, ns)) == 0, nil })
	suite.WaitFor(t, "operator labels removed", 30*time.Second, func() (bool, error) { return noOperatorLabels(ns) })
	assertConnectivity(t, http8080, calls{}, ns)
}

// noOperatorLabels reports whether no pod in ns carries a label the operator adds.
func noOperatorLabels(ns string) (bool, error) {
	var pods corev1.PodList
	if err := kube.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		return false, err
	}
	for _, p := range pods.Items {
		if _, ok := p.Labels[compile.WorkloadLabel]; ok {
			return false, nil
		}
		if _, ok := p.Labels[compile.WorkloadKindLabel]; ok {
			return false, nil
		}
	}
	return true, nil
}

// In shadow mode nothing is enforced and the status says what would be; a
// ProtectedService turns enforcement on for its server only.
func TestShadowModeAndProtectedService(t *testing.T) {
	startOperator(t, enforcement.Options{Shadow: true})
	ns := env.Namespace(t, "shadow")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "billing", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
  - kubernetes: {name: billing}
`)
	got := waitReady(t, ci)
	if got.Status.Enforcement != status.EnforcementShadow {
		t.Fatalf("enforcement = %q, want Shadow", got.Status.Enforcement)
	}
	cond := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionEnforced)
	if cond == nil || cond.Reason != enforcement.ReasonShadow || !strings.Contains(cond.Message, "server.shadow") {
		t.Fatalf("Enforced condition = %+v", cond)
	}
	suite.WaitFor(t, "a Shadow event", 30*time.Second, func() (bool, error) { return hasEvent(ns, ci.Name, enforcement.ReasonShadow) })
	if n := len(managedPolicies(t, ns)); n != 0 {
		t.Fatalf("%d policies in shadow mode", n)
	}
	assertConnectivity(t, http8080, calls{}, ns)

	env.Create(t, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"}, Spec: v2beta1.ProtectedServiceSpec{Name: "server"}})
	eventuallyConnectivity(t, http8080, calls{"server.shadow": {"client.shadow"}}, ns)
	suite.WaitFor(t, "Partial enforcement", 30*time.Second, func() (bool, error) {
		var ci2 v2beta1.ClientIntents
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &ci2)
		return err == nil && ci2.Status.Enforcement == status.EnforcementPartial, err
	})

	// A ProtectedService for a server nobody declared a call to denies all its ingress.
	env.Deployment(t, ns, "vault", 1, nil, nil)
	env.Create(t, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vault"}, Spec: v2beta1.ProtectedServiceSpec{Name: "vault"}})
	eventuallyConnectivity(t, http8080, calls{"server.shadow": {"client.shadow"}, "vault.shadow": {}}, ns)
}

// Namespaces listed as enforced are enforced in shadow mode; others are not.
func TestPerNamespaceEnforcement(t *testing.T) {
	startOperator(t, enforcement.Options{Shadow: true, EnforcedNamespaces: []string{"enforced-ns"}})
	on, off := env.Namespace(t, "enforced-ns"), env.Namespace(t, "shadowed-ns")
	for _, ns := range []string{on, off} {
		env.Deployment(t, ns, "server", 1, nil, nil)
		env.Deployment(t, ns, "client", 1, nil, nil)
		env.Deployment(t, ns, "intruder", 1, nil, nil)
		waitReady(t, env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
`))
	}
	assertConnectivity(t, http8080, calls{"server.enforced-ns": {"client.enforced-ns"}}, on, off)
}

// Deleting intents removes exactly their policy; deleting a client namespace removes its
// clients from other namespaces' policies.
func TestDeletingIntentsAndNamespaces(t *testing.T) {
	startOperator(t, enforcement.Options{})
	srv := env.Namespace(t, "del-server")
	gone := env.Namespace(t, "del-client")
	env.Deployment(t, srv, "api", 1, nil, nil)
	env.Deployment(t, srv, "cache", 1, nil, nil)
	env.Deployment(t, srv, "local", 1, nil, nil)
	env.Deployment(t, gone, "remote", 1, nil, nil)
	local := env.ApplyIntents(t, srv, `
metadata: {name: local}
spec:
  workload: {name: local}
  targets:
  - kubernetes: {name: api}
  - kubernetes: {name: cache}
`)
	remote := env.ApplyIntents(t, gone, `
metadata: {name: remote}
spec:
  workload: {name: remote}
  targets:
  - kubernetes: {name: api.del-server}
`)
	waitReady(t, local)
	waitReady(t, remote)
	assertConnectivity(t, http8080, calls{"api.del-server": {"local.del-server", "remote.del-client"}, "cache.del-server": {"local.del-server"}}, srv, gone)

	deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gone}})
	suite.WaitFor(t, "api policy without the deleted namespace's client", 30*time.Second, func() (bool, error) {
		var p networkingv1.NetworkPolicy
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: srv, Name: "access-to.any.api"}, &p); err != nil {
			return false, err
		}
		return len(p.Spec.Ingress) == 1 && len(p.Spec.Ingress[0].From) == 1, nil
	})
	assertConnectivity(t, http8080, calls{"api.del-server": {"local.del-server"}, "cache.del-server": {"local.del-server"}}, srv)

	deleteObj(t, local)
	suite.WaitFor(t, "all policies removed", 30*time.Second, func() (bool, error) { return len(managedPolicies(t, srv)) == 0, nil })
	assertConnectivity(t, http8080, calls{}, srv)
}

// A managed policy deleted or edited by hand is restored; a policy the operator did not
// create is never touched.
func TestHandEditedPoliciesRestoredForeignUntouched(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "tamper")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	env.Deployment(t, ns, "other", 1, nil, nil)
	foreign := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-owned", Labels: map[string]string{"team": "infra"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	env.Create(t, foreign)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
`)
	waitReady(t, ci)
	want := calls{"server.tamper": {"client.tamper"}}
	assertConnectivity(t, http8080, want, ns)
	key := client.ObjectKey{Namespace: ns, Name: "access-to.any.server"}

	var p networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), key, &p); err != nil {
		t.Fatal(err)
	}
	deleteObj(t, &p)
	suite.WaitFor(t, "deleted policy restored", 30*time.Second, func() (bool, error) {
		var again networkingv1.NetworkPolicy
		err := kube.Get(context.Background(), key, &again)
		return err == nil && again.UID != p.UID, client.IgnoreNotFound(err)
	})
	assertConnectivity(t, http8080, want, ns)

	// Open the server to everyone by hand, and add an egress rule: both are reverted.
	if err := kube.Get(context.Background(), key, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	if err := kube.Update(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "edited policy restored", 30*time.Second, func() (bool, error) {
		var again networkingv1.NetworkPolicy
		if err := kube.Get(context.Background(), key, &again); err != nil {
			return false, err
		}
		return len(again.Spec.Egress) == 0 && len(again.Spec.Ingress) == 1 && len(again.Spec.Ingress[0].From) == 1, nil
	})
	assertConnectivity(t, http8080, want, ns)

	var after networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(foreign), &after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != 1 || after.Labels[ownership.Label] != "" {
		t.Fatalf("foreign policy was modified: generation %d, labels %v", after.Generation, after.Labels)
	}
	deleteObj(t, ci)
	suite.WaitFor(t, "managed policy removed", 30*time.Second, func() (bool, error) { return len(managedPolicies(t, ns)) == 0, nil })
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(foreign), &after); err != nil {
		t.Fatalf("foreign policy gone after intents were deleted: %v", err)
	}
}

// A hand-written policy that happens to carry the name the operator would use is left
// alone, and the intents report why they are not in force, with a Warning Event, until it
// is gone.
func TestForeignPolicyWithOperatorNameLeftAlone(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "squatter")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	squatter := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "access-to.any.server"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "nothing"}}},
	}
	env.Create(t, squatter)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
`)
	suite.WaitFor(t, "Ready=False saying the name is taken", 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got)
		c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady)
		return err == nil && c != nil && c.Status == metav1.ConditionFalse && c.Reason == enforcement.ReasonFailed &&
			strings.Contains(c.Message, "exists and is not managed by"), err
	})
	var after networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(squatter), &after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != 1 || len(after.Labels) != 0 {
		t.Fatalf("foreign policy modified: %+v", after.ObjectMeta)
	}

	// Events are for what a user acts on: the failure is a Warning, its end a Normal
	// Event, and intents enforced from the start get none, only their status.
	suite.WaitFor(t, "a Warning Failed Event", 30*time.Second, func() (bool, error) {
		got, err := eventsOn(ns, ci.Name)
		return slices.Contains(got, corev1.EventTypeWarning+" "+enforcement.ReasonFailed), err
	})
	deleteObj(t, squatter)
	waitReady(t, ci)
	suite.WaitFor(t, "a Normal Reconciled Event after the failure", 30*time.Second, func() (bool, error) {
		got, err := eventsOn(ns, ci.Name)
		return slices.Contains(got, corev1.EventTypeNormal+" "+enforcement.ReasonReconciled), err
	})
	env.Deployment(t, ns, "quiet", 1, nil, nil)
	quiet := waitReady(t, env.ApplyIntents(t, ns, `
metadata: {name: quiet}
spec:
  workload: {name: quiet}
  targets:
  - kubernetes: {name: server}
`))
	time.Sleep(time.Second) // an Event the status write caused would be recorded by now
	if got, err := eventsOn(ns, quiet.Name); err != nil || len(got) != 0 {
		t.Fatalf("enforced intents got Events %v (%v), want none", got, err)
	}
	// Ready and Enforced each announce the failure and its end.
	want := []string{"Normal Enforced", "Normal NotEnforced", "Normal Reconciled", "Warning Failed"}
	got, err := eventsOn(ns, ci.Name)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Events %v (%v), want %v", got, err, want)
	}
}

// Invalid intents are rejected by the API server with a message that says what is wrong.
func TestInvalidIntentsRejected(t *testing.T) {
	ns := env.Namespace(t, "invalid")
	for _, tt := range []struct{ name, doc, want string }{
		{"two keys in one target", `
metadata: {name: two-keys}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
    service: {name: server}
`, "exactly one of kubernetes, service, kafka or internet"},
		{"empty target", `
metadata: {name: empty}
spec:
  workload: {name: client}
  targets:
  - {}
`, "exactly one of kubernetes, service, kafka or internet"},
		{"bad kafka operation", `
metadata: {name: kafka-op}
spec:
  workload: {name: client}
  targets:
  - kafka: {name: kafka.kafka, topics: [{name: orders, operations: [eat]}]}
`, `Unsupported value: "eat"`},
		{"bad http method", `
metadata: {name: http-method}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server, http: [{path: /api, methods: [FETCH]}]}
`, `Unsupported value: "FETCH"`},
		{"name that is not a Kubernetes name", `
metadata: {name: bad-name}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: Server_1}
`, "spec.targets[0].kubernetes.name"},
		{"too many dots", `
metadata: {name: dots}
spec:
  workload: {name: client}
  targets:
  - service: {name: a.b.c}
`, "spec.targets[0].service.name"},
		{"missing workload name", `
metadata: {name: no-workload}
spec:
  workload: {name: ""}
`, "spec.workload.name"},
		{"internet target without addresses", `
metadata: {name: no-addresses}
spec:
  workload: {name: client}
  targets:
  - internet: {ports: [443]}
`, "at least one domain or ip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ci := &v2beta1.ClientIntents{}
			if err := yamlStrict(tt.doc, ci); err != nil {
				t.Fatal(err)
			}
			ci.Namespace = ns
			err := kube.Create(context.Background(), ci)
			if err == nil {
				t.Fatal("the API server accepted invalid intents")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	t.Run("no spec at all", func(t *testing.T) {
		for _, kind := range []string{"ClientIntents", "ProtectedService"} {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(v2beta1.GroupVersion.String())
			u.SetKind(kind)
			u.SetNamespace(ns)
			u.SetName("no-spec")
			err := kube.Create(context.Background(), u)
			if err == nil || !strings.Contains(err.Error(), "spec: Required value") {
				t.Errorf("%s without spec: got error %v, want spec: Required value", kind, err)
			}
		}
	})
}

// Once converged, a full re-reconcile of an unchanged cluster writes nothing.
func TestResyncOfUnchangedClusterWritesNothing(t *testing.T) {
	ns := env.Namespace(t, "idle")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "client", 2, nil, nil)
	env.Deployment(t, ns, "annotated", 1, map[string]string{identity.WorkloadNameAnnotation: "batch"}, nil)
	service(t, ns, "server", map[string]string{"app": "server"}, 80, intstr.FromInt32(8080))
	env.Create(t, &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"}, Spec: v2beta1.ProtectedServiceSpec{Name: "client"}})
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - service: {name: server}
`)
	batch := env.ApplyIntents(t, ns, `
metadata: {name: batch}
spec:
  workload: {name: batch}
  targets:
  - kubernetes: {name: server}
  - kubernetes: {name: missing}
`)
	t.Run("converge", func(t *testing.T) {
		startOperator(t, enforcement.Options{})
		waitReady(t, ci)
		waitReady(t, batch)
		suite.WaitFor(t, "policies", 30*time.Second, func() (bool, error) { return len(managedPolicies(t, ns)) == 4, nil })
		eventuallyConnectivity(t, http8080, calls{"server.idle": {"client.idle", "batch.idle"}, "client.idle": {}}, ns)
	})
	// A fresh operator lists and reconciles everything from scratch, exactly like a resync.
	// Its reconcile counters prove it did before the writes are counted.
	policiesBefore, statusBefore := reconciles(t, "networkpolicy"), reconciles(t, "clientintents-status")
	counter := startOperator(t, enforcement.Options{})
	waitReady(t, ci)
	suite.WaitFor(t, "every server and both ClientIntents reconciled by the new operator", 30*time.Second, func() (bool, error) {
		return reconciles(t, "networkpolicy")-policiesBefore >= 4 && reconciles(t, "clientintents-status")-statusBefore >= 2, nil
	})
	time.Sleep(time.Second) // writes a reconcile started would have landed by now
	if reqs := counter.Requests(); len(reqs) != 0 {
		t.Fatalf("resync of an unchanged cluster wrote %d times: %v", len(reqs), reqs)
	}
}

// Editing one ClientIntents writes the one policy it changes and its own status, nothing
// else: no Pending status on the way, no other server's policy, no other intents' status,
// no Event. New intents cost the same.
func TestOneEditWritesOnlyWhatChanged(t *testing.T) {
	ns := env.Namespace(t, "one-edit")
	for _, name := range []string{"alpha", "beta", "first", "second"} {
		env.Deployment(t, ns, name, 1, nil, nil)
	}
	first := env.ApplyIntents(t, ns, `
metadata: {name: first}
spec:
  workload: {name: first}
  targets:
  - kubernetes: {name: alpha}
`)
	second := env.ApplyIntents(t, ns, `
metadata: {name: second}
spec:
  workload: {name: second}
  targets:
  - kubernetes: {name: alpha}
  - kubernetes: {name: beta}
`)
	counter := startOperator(t, enforcement.Options{})
	first = waitReady(t, first)
	waitReady(t, second)
	time.Sleep(time.Second) // let every initial reconcile run
	before := len(counter.Requests())

	first.Spec.Targets = append(first.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "beta"}})
	if err := kube.Update(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitReady(t, first)
	eventuallyConnectivity(t, http8080, calls{"alpha.one-edit": {"first.one-edit", "second.one-edit"}, "beta.one-edit": {"first.one-edit", "second.one-edit"}}, ns)
	// Namespaces of earlier tests may still be terminating, with the operator reporting
	// on them; only this namespace's writes are the change's.
	expectWrites := func(change string, want ...string) {
		t.Helper()
		time.Sleep(time.Second) // anything the change still causes would be written by now
		var got []string
		for _, r := range counter.Requests()[before:] {
			if strings.Contains(r, "/namespaces/"+ns+"/") {
				got = append(got, r)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s wrote %v, want %v", change, got, want)
		}
	}
	expectWrites("one edit",
		"PATCH /apis/k8s.otterize.com/v2beta1/namespaces/one-edit/clientintents/first/status",
		"PATCH /apis/networking.k8s.io/v1/namespaces/one-edit/networkpolicies/access-to.any.beta")

	// New intents that are enforced at once cost their policy change and one status,
	// and no Event.
	env.Deployment(t, ns, "third", 1, nil, nil)
	before = len(counter.Requests())
	waitReady(t, env.ApplyIntents(t, ns, `
metadata: {name: third}
spec:
  workload: {name: third}
  targets:
  - kubernetes: {name: beta}
`))
	expectWrites("new intents",
		"PATCH /apis/k8s.otterize.com/v2beta1/namespaces/one-edit/clientintents/third/status",
		"PATCH /apis/networking.k8s.io/v1/namespaces/one-edit/networkpolicies/access-to.any.beta")
}

// reconciles reads the successful reconciles of one controller from the process's
// controller-runtime metrics, which every operator of the test process adds to.
func reconciles(t *testing.T, name string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var ctrlName, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "controller":
					ctrlName = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			if ctrlName == name && result == "success" {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
