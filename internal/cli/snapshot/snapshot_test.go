package snapshot_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/snapshot"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// TestSnapshotReadsBackAsTheLiveObjects writes a snapshot of a real kube-apiserver and
// loads it back: every object the cluster holds for the namespace asked for comes back
// with the facts the operator reads, and nothing it must not keep.
func TestSnapshotReadsBackAsTheLiveObjects(t *testing.T) {
	ctx := context.Background()
	lc, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	seed(t, kube)

	var out bytes.Buffer
	if _, err := snapshot.Write(ctx, &out, &input.Live{Kubeconfig: lc.Kubeconfig, Namespaces: []string{"shop"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, never := range []string{"managedFields", "last-applied-configuration", "kind: Secret", "s3cr3t", "example.com/checkout:1", "resourceVersion", "kind: ConfigMap"} {
		if strings.Contains(text, never) {
			t.Errorf("the snapshot holds %q:\n%s", never, text)
		}
	}
	file := filepath.Join(t.TempDir(), "snapshot.yaml")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := input.Load(ctx, input.Options{Snapshots: []string{file}})
	if err != nil {
		t.Fatalf("loading the snapshot back: %v\n%s", err, text)
	}

	live, err := (&input.Live{Config: lc.Config, Namespaces: []string{"shop"}}).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Objects) != len(live) {
		t.Errorf("%d objects loaded back, %d live", len(loaded.Objects), len(live))
	}
	byKey := map[input.Key]client.Object{}
	for _, o := range loaded.Objects {
		byKey[input.KeyOf(o)] = o
	}
	for _, o := range live {
		got, ok := byKey[input.KeyOf(o)]
		if !ok {
			t.Errorf("%s is missing from the snapshot", input.KeyOf(o))
			continue
		}
		// Compared as their fields; of an owner read as metadata only, the metadata.
		gotFields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
		if err != nil {
			t.Fatal(err)
		}
		wantFields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(snapshot.Strip(o))
		if err != nil {
			t.Fatal(err)
		}
		if _, metadataOnly := o.(*metav1.PartialObjectMetadata); metadataOnly {
			gotFields, wantFields = gotFields["metadata"].(map[string]any), wantFields["metadata"].(map[string]any)
		}
		if !equality.Semantic.DeepEqual(gotFields, wantFields) {
			t.Errorf("%s loaded back as\n%v\nwant\n%v", input.KeyOf(o), gotFields, wantFields)
		}
	}

	// The facts offline analysis needs, read from what was loaded back.
	for _, want := range []string{"Namespace shop", "Service kube-system/kube-dns", "Pod shop/checkout-abc", "ReplicaSet.apps shop/checkout-5d9", "Deployment.apps shop/checkout",
		"StatefulSet.apps shop/db", "Job.batch shop/migrate", "CronJob.batch shop/report", "NetworkPolicy.networking.k8s.io shop/deny",
		"ClientIntents.k8s.otterize.com shop/checkout", "ProtectedService.k8s.otterize.com shop/orders", "KafkaServerConfig.k8s.otterize.com shop/kafka",
		"PodTemplate shop/runner", "Pod shop/runner-1", "Pod shop/rollout-1"} {
		if _, ok := loaded.Sources[keyFromString(t, loaded, want)]; !ok {
			t.Errorf("%s is not in the snapshot", want)
		}
	}
	for _, o := range loaded.Objects {
		if o.GetNamespace() == "other" || o.GetName() == "other" {
			t.Errorf("%s is outside the namespace asked for", input.KeyOf(o))
		}
	}
	runner := find[*corev1.PodTemplate](t, loaded, "shop", "runner")
	if len(runner.Template.Spec.Containers) > 0 || runner.UID == "" {
		t.Errorf("the pod's owner of another kind is not read as metadata only: %#v", runner)
	}
	ns := find[*corev1.Namespace](t, loaded, "", "shop")
	if ns.Labels["team"] != "payments" {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	pod := find[*corev1.Pod](t, loaded, "shop", "checkout-abc")
	if pod.Status.PodIP != "10.1.2.3" || len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Name != "checkout-5d9" ||
		pod.Labels["app"] != "checkout" || pod.Annotations["credentials.intentguard.dev/dns-names"] != "checkout.shop.svc" ||
		pod.Spec.ServiceAccountName != "checkout" || pod.Spec.Containers[0].Ports[0].ContainerPort != 8080 {
		t.Errorf("pod facts lost: %#v", pod)
	}
	svc := find[*corev1.Service](t, loaded, "shop", "orders")
	if svc.Spec.Selector["app"] != "orders" || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Errorf("service facts lost: %#v", svc.Spec)
	}
	ci := find[*v2beta1.ClientIntents](t, loaded, "shop", "checkout")
	if len(ci.Spec.Targets) != 1 || ci.Spec.Targets[0].Kubernetes.Name != "orders" {
		t.Errorf("intents lost: %#v", ci.Spec)
	}
}

// keyFromString finds the key whose String is s among the loaded objects.
func keyFromString(t *testing.T, set *input.Set, s string) input.Key {
	t.Helper()
	for k := range set.Sources {
		if k.String() == s {
			return k
		}
	}
	return input.Key{}
}

// find returns the loaded object of type T with the namespace and name.
func find[T client.Object](t *testing.T, set *input.Set, ns, name string) T {
	t.Helper()
	for _, o := range set.Objects {
		if typed, ok := o.(T); ok && o.GetNamespace() == ns && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T %s/%s loaded", zero, ns, name)
	return zero
}

// seed creates the objects of namespace shop (and some outside it the snapshot must
// leave out).
func seed(t *testing.T, kube client.Client) {
	t.Helper()
	ctx := context.Background()
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "shop", Name: name} }
	labels := map[string]string{"app": "checkout"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"credentials.intentguard.dev/dns-names": "checkout.shop.svc"}},
		Spec: corev1.PodSpec{ServiceAccountName: "checkout", Containers: []corev1.Container{{
			Name: "app", Image: "example.com/checkout:1", Env: []corev1.EnvVar{{Name: "TOKEN", Value: "s3cr3t"}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
	dep := &appsv1.Deployment{ObjectMeta: meta("checkout"), Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		&corev1.ServiceAccount{ObjectMeta: meta("checkout")},
		&corev1.Secret{ObjectMeta: meta("token"), StringData: map[string]string{"token": "s3cr3t"}},
		&corev1.ConfigMap{ObjectMeta: meta("settings"), Data: map[string]string{"token": "s3cr3t"}},
		dep,
		&corev1.Service{ObjectMeta: meta("orders"), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "orders"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "other"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}},
		&appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}, Spec: template.Spec}}},
		&batchv1.Job{ObjectMeta: meta("migrate"), Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: template.Spec.Containers}}}},
		&batchv1.CronJob{ObjectMeta: meta("report"), Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: template.Spec.Containers}}}}}},
		&networkingv1.NetworkPolicy{ObjectMeta: meta("deny"), Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		&v2beta1.ClientIntents{ObjectMeta: meta("checkout"), Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "checkout"},
			Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "orders"}}}}},
		&v2beta1.ProtectedService{ObjectMeta: meta("orders"), Spec: v2beta1.ProtectedServiceSpec{Name: "orders"}},
		&v2beta1.KafkaServerConfig{ObjectMeta: meta("kafka"), Spec: v2beta1.KafkaServerConfigSpec{Workload: v2beta1.Workload{Name: "kafka"}, Addr: "kafka:9092",
			Topics: []v2beta1.KafkaServerTopic{{Topic: "*"}}}},
	}
	for _, o := range objs {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: meta("checkout-5d9"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: dep.Spec.Selector, Template: template}}
	rs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr.To(true)}}
	if err := kube.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: meta("checkout-abc"), Spec: template.Spec}
	pod.Labels, pod.Annotations = labels, map[string]string{
		"credentials.intentguard.dev/dns-names":            "checkout.shop.svc",
		"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"containers":[{"image":"example.com/checkout:1"}]}}`,
	}
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
	if err := kube.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	runner := &corev1.PodTemplate{ObjectMeta: meta("runner"), Template: template}
	if err := kube.Create(ctx, runner); err != nil {
		t.Fatal(err)
	}
	// Pods owned by a kind the snapshot does not list: one it reads (as metadata), one
	// the cluster does not serve.
	for name, owner := range map[string]metav1.OwnerReference{
		"runner-1":  {APIVersion: "v1", Kind: "PodTemplate", Name: runner.Name, UID: runner.UID},
		"rollout-1": {APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "checkout", UID: "0d4e6f4c-0000-4000-8000-000000000000"},
	} {
		p := &corev1.Pod{ObjectMeta: meta(name), Spec: template.Spec}
		p.OwnerReferences = []metav1.OwnerReference{owner}
		if err := kube.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3", PodIPs: []corev1.PodIP{{IP: "10.1.2.3"}}}
	if err := kube.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}
