package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/status"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// podSpec is a container listening on the http port the probes use.
func podSpec(restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: restart, Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}
}

func controllerRef(o client.Object, apiVersion, kind string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: o.GetName(), UID: o.GetUID(), Controller: &yes}}
}

// jobOf creates a Job (owned by owner when given) whose pods the job controller creates.
func jobOf(t *testing.T, ns, name string, owner []metav1.OwnerReference) {
	t.Helper()
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owner},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"run": name}},
			Spec:       podSpec(corev1.RestartPolicyNever),
		}},
	}
	env.Create(t, j)
	waitPods(t, ns, map[string]string{"run": name}, 1)
}

// replicaSetOf creates a ReplicaSet (owned by owner when given) with one pod.
func replicaSetOf(t *testing.T, ns, name string, owner []metav1.OwnerReference) {
	t.Helper()
	one := int32(1)
	labels := map[string]string{"rs": name}
	env.Create(t, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owner},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(corev1.RestartPolicyAlways)}},
	})
	waitPods(t, ns, labels, 1)
}

func waitPods(t *testing.T, ns string, labels map[string]string, n int) {
	t.Helper()
	suite.WaitFor(t, "pods of "+ns, 30*time.Second, func() (bool, error) {
		var pods corev1.PodList
		err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels(labels))
		return err == nil && len(pods.Items) >= n, err
	})
}

// widgetCRD installs a custom kind that owns pods the way an Argo Rollout or a Strimzi
// pod set does; the operator has no type for it.
func widgetCRD(t *testing.T) {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.test.intentguard.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "test.intentguard.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}}}},
		},
	}
	if err := kube.Create(context.Background(), crd); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the Widget CRD", 30*time.Second, func() (bool, error) {
		var got apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(crd), &got); err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

func ptr[T any](v T) *T { return &v }

// widget creates a Widget and returns it with its UID.
func widget(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	w := &unstructured.Unstructured{}
	w.SetAPIVersion("test.intentguard.dev/v1")
	w.SetKind("Widget")
	w.SetNamespace(ns)
	w.SetName(name)
	var err error
	for i := 0; i < 50; i++ { // the API server serves a new CRD a moment after Established
		if err = kube.Create(context.Background(), w); err == nil {
			return w
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// Pods whose root owner has no selector (CronJob -> Job, a bare Job, a standalone
// ReplicaSet, a custom kind) are found by their identity: as clients they are admitted,
// as servers they are protected.
func TestEveryOwnerKindEnforced(t *testing.T) {
	startOperator(t, enforcement.Options{})
	widgetCRD(t)
	ns := env.Namespace(t, "owners")
	env.Deployment(t, ns, "api", 1, nil, nil)
	env.Deployment(t, ns, "other", 1, nil, nil)
	cron := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: ptr(true), JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: podSpec(corev1.RestartPolicyNever)}}}},
	}
	env.Create(t, cron)
	jobOf(t, ns, "report-29000000", controllerRef(cron, "batch/v1", "CronJob"))
	jobOf(t, ns, "migrate", nil)
	replicaSetOf(t, ns, "lonely", nil)
	w := widget(t, ns, "canary")
	replicaSetOf(t, ns, "canary-5d8f", controllerRef(w, "test.intentguard.dev/v1", "Widget"))

	report := env.ApplyIntents(t, ns, `
metadata: {name: report}
spec:
  workload: {name: report, kind: CronJob}
  targets:
  - kubernetes: {name: api}
`)
	api := env.ApplyIntents(t, ns, `
metadata: {name: api}
spec:
  workload: {name: api}
  targets:
  - kubernetes: {name: migrate}
  - kubernetes: {name: lonely}
  - kubernetes: {name: canary, kind: Widget}
`)
	for _, ci := range []*v2beta1.ClientIntents{report, api} {
		got := waitReady(t, ci)
		if got.Status.Enforcement != status.EnforcementEnforced {
			t.Fatalf("%s: enforcement %q: %+v", ci.Name, got.Status.Enforcement, got.Status.Targets)
		}
	}
	eventuallyConnectivity(t, http8080, calls{
		"api.owners":     {"report.owners"},
		"migrate.owners": {"api.owners"},
		"lonely.owners":  {"api.owners"},
		"canary.owners":  {"api.owners"},
	}, ns)
}

// Intents naming a server in a namespace that does not exist yet say so at once, per
// target, without claiming the other targets' enforcement for it; the policy follows
// within seconds of the namespace and its workload.
func TestServerNamespaceCreatedLater(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "early")
	env.Deployment(t, ns, "client", 1, nil, nil)
	env.Deployment(t, ns, "server", 1, nil, nil)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kubernetes: {name: server}
  - kubernetes: {name: api.late-ns}
`)
	start := time.Now()
	var got v2beta1.ClientIntents
	suite.WaitFor(t, "a status naming the missing namespace", 30*time.Second, func() (bool, error) {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "waiting for namespace late-ns"), nil
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("status took %v", d)
	}
	// The other target's policy may still be on its way in the first status; once it is
	// in place, that target alone is Enforced.
	suite.WaitFor(t, "server enforced while late-ns waits", 30*time.Second, func() (bool, error) {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		for _, st := range got.Status.Targets {
			want := enforcement.Enforced
			if strings.Contains(st.Target, "late-ns") {
				want = enforcement.Waiting
			}
			if st.State != string(want) {
				return false, fmt.Errorf("target %s: state %s (%s), want %s", st.Target, st.State, st.Message, want)
			}
		}
		return len(got.Status.Targets) == 2, nil
	})
	if c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionEnforced); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "late-ns") {
		t.Errorf("Enforced = %+v", c)
	}
	if c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionTargetsResolved); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("TargetsResolved = %+v", c)
	}
	assertReadiness(t, ci, enforcement.ConditionReconciling)

	late := env.Namespace(t, "late-ns")
	env.Deployment(t, late, "api", 1, nil, nil)
	start = time.Now()
	waitReady(t, ci)
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("converged %v after the namespace appeared", d)
	}
	eventuallyConnectivity(t, http8080, calls{"server.early": {"client.early"}, "api.late-ns": {"client.early"}}, ns, late)
}

// The cluster DNS server keeps the ports its Service forwards to (here 5353) open to
// everyone, whatever name the intents know it by.
func TestClusterDNSPortsFromService(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "dns-client")
	env.Deployment(t, ns, "prometheus", 1, nil, nil)
	d := env.Deployment(t, "kube-system", "resolver", 1, nil, map[string]string{"k8s-app": "kube-dns"})
	t.Cleanup(func() { _ = kube.Delete(context.Background(), d) })
	udp := corev1.ProtocolUDP
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: udp, TargetPort: intstr.FromInt32(5353)},
			{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(5353)},
		}},
	}
	env.Create(t, svc)
	t.Cleanup(func() { _ = kube.Delete(context.Background(), svc) })
	ci := env.ApplyIntents(t, ns, `
metadata: {name: prometheus}
spec:
  workload: {name: prometheus}
  targets:
  - kubernetes: {name: resolver.kube-system}
`)
	waitReady(t, ci)
	var np networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: "access-to.any.resolver"}, &np); err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) > 0 {
			continue
		}
		for _, p := range rule.Ports {
			open[string(*p.Protocol)+"/"+p.Port.String()] = true
		}
	}
	if !open["UDP/5353"] || !open["TCP/5353"] || len(open) != 2 {
		t.Fatalf("ports open to everyone: %v, want UDP/5353 and TCP/5353", open)
	}
}

// A Service without a selector gets no policy, and the status says so instead of
// claiming enforcement.
func TestServiceWithoutSelectorNotClaimed(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "noselector")
	env.Deployment(t, ns, "client", 1, nil, nil)
	service(t, ns, "external-db", nil, 5432, intstr.FromInt32(5432))
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - service: {name: external-db}
`)
	var got v2beta1.ClientIntents
	suite.WaitFor(t, "a Failed status", 30*time.Second, func() (bool, error) {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		c := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady)
		return c != nil && c.Reason == enforcement.ReasonFailed && strings.Contains(c.Message, "no pod selector"), nil
	})
	if got.Status.Enforcement == status.EnforcementEnforced || apimeta.IsStatusConditionTrue(got.Status.Conditions, enforcement.ConditionEnforced) {
		t.Fatalf("status claims enforcement: %+v", got.Status)
	}
	if n := len(managedPolicies(t, ns)); n != 0 {
		t.Fatalf("%d policies for a Service without selector", n)
	}
}

// In shadow mode, a ProtectedService closes its server to undeclared clients but never
// to a client that declared its call through a Service of another name; the
// ProtectedService reports the policy that protects it.
func TestShadowProtectedServiceReachedThroughOtherServiceName(t *testing.T) {
	startOperator(t, enforcement.Options{Shadow: true})
	ns := env.Namespace(t, "shadow-svc")
	env.Deployment(t, ns, "server", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	env.Deployment(t, ns, "other", 1, nil, nil)
	service(t, ns, "web", map[string]string{"app": "server"}, 80, intstr.FromInt32(8080))
	ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"}, Spec: v2beta1.ProtectedServiceSpec{Name: "server"}}
	env.Create(t, ps)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - service: {name: web}
`)
	// The ProtectedService may reach the operator after the intents: Shadow first is fine,
	// Enforced is where it must end.
	suite.WaitFor(t, "the Service target enforced", 30*time.Second, func() (bool, error) {
		got := waitReady(t, ci)
		return got.Status.Enforcement == status.EnforcementEnforced, nil
	})
	eventuallyConnectivity(t, http8080, calls{"server.shadow-svc": {"client.shadow-svc"}}, ns)
	suite.WaitFor(t, "ProtectedService Ready with its policy", 30*time.Second, func() (bool, error) {
		var p v2beta1.ProtectedService
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ps), &p); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(p.Status.Conditions, enforcement.ConditionReady) && p.Status.Policy == "access-to.any.server", nil
	})
}

// A ProtectedService for a server nobody declared calls to closes it to everyone, and
// says which policy does.
func TestProtectedServiceAloneDeniesAll(t *testing.T) {
	startOperator(t, enforcement.Options{})
	ns := env.Namespace(t, "lonely-ps")
	env.Deployment(t, ns, "vault", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "protect-vault"}, Spec: v2beta1.ProtectedServiceSpec{Name: "vault"}}
	env.Create(t, ps)
	eventuallyConnectivity(t, http8080, calls{"vault.lonely-ps": {}}, ns)
	suite.WaitFor(t, "ProtectedService Ready with its policy", 30*time.Second, func() (bool, error) {
		var p v2beta1.ProtectedService
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ps), &p); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(p.Status.Conditions, enforcement.ConditionReady) && p.Status.Policy == "access-to.any.vault", nil
	})
}

// A pod seen before its owner is resolved again when the owner arrives. A control plane of
// its own, without the garbage collector, keeps a pod whose owner does not exist yet (the
// collector would delete it), which is what an operator's cache sees when pod events
// outrun owner events.
func TestOwnerArrivingAfterItsPod(t *testing.T) {
	ctx := context.Background()
	lc, err := controlplane.Start(ctx, controlplane.Options{WithoutControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Stop() })
	c, err := client.New(lc.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate := func(objs ...client.Object) {
		t.Helper()
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				t.Fatalf("creating %s: %v", o.GetName(), err)
			}
		}
	}
	ns := "late-owner"
	mustCreate(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	web, api := tutorial.Deployment(ns, "web", 8080), tutorial.Deployment(ns, "api", 8080)
	mustCreate(web, api)
	yes := true
	pod := func(name, rs string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: "00000000-0000-0000-0000-000000000001", Controller: &yes}}},
			Spec: podSpec(corev1.RestartPolicyAlways)}
	}
	// The pods arrive before their ReplicaSets.
	mustCreate(pod("web-5c7-a", "web-5c7", map[string]string{"app": "web"}), pod("api-9f2-a", "api-9f2", map[string]string{"app": "api"}))
	mustCreate(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "intruder", Labels: map[string]string{"app": "intruder"}}, Spec: podSpec(corev1.RestartPolicyAlways)})
	startOperatorOn(t, lc.Config, enforcement.Options{})
	ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "web"}, Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "api"}}}}}
	mustCreate(ci)
	// web reaches api, and api is protected: the intruder does not.
	enforced := func() (bool, error) {
		m, err := connectivity.Evaluate(ctx, c, []string{ns}, http8080)
		if err != nil {
			return false, err
		}
		pods := map[string]connectivity.Pod{}
		for _, p := range m.Pods {
			pods[p.Name] = p
		}
		return m.Allowed(pods["web-5c7-a"], pods["api-9f2-a"]) && !m.Allowed(pods["intruder"], pods["api-9f2-a"]), nil
	}
	time.Sleep(time.Second)
	rs := func(name string, d *appsv1.Deployment) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
			Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template}}
	}
	mustCreate(rs("web-5c7", web), rs("api-9f2", api))
	suite.WaitFor(t, "web's pod admitted by api's policy once the owners arrived", 30*time.Second, func() (bool, error) {
		var np networkingv1.NetworkPolicyList
		if err := c.List(ctx, &np, client.InNamespace(ns)); err != nil || len(np.Items) != 1 {
			return false, err
		}
		return enforced()
	})
	suite.WaitFor(t, "the ClientIntents Ready", 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		if err := c.Get(ctx, client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(got.Status.Conditions, enforcement.ConditionReady) && got.Status.Enforcement == status.EnforcementEnforced, nil
	})
}
