// Package snapshot saves, from a live cluster, the facts that manifests alone cannot
// say and the operator's decisions depend on (namespace labels, the pods of each
// workload with their addresses and owners of every kind, Service selectors, the DNS
// Service, the intentguard objects in force), as plain multi-document YAML that input
// reads back as a layer under a change. It keeps only what those decisions read: no
// container images, commands or environment, no status beyond pod addresses, and never
// Secrets.
package snapshot

import (
	"context"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
)

// lastApplied is the annotation kubectl apply keeps the whole manifest in, which can hold
// anything the manifest held.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Write reads the cluster and writes its snapshot to w, returning how many objects it
// wrote. now dates the header.
func Write(ctx context.Context, w io.Writer, live *input.Live, now time.Time) (int, error) {
	objs, err := live.Read(ctx)
	if err != nil {
		return 0, err
	}
	where := "the current context"
	if live.Context != "" {
		where = "context " + live.Context
	}
	if _, err := fmt.Fprintf(w, "# intentguard snapshot of %s, %s\n", where, now.UTC().Format(time.RFC3339)); err != nil {
		return 0, fmt.Errorf("writing the snapshot: %w", err)
	}
	for _, o := range objs {
		b, err := Marshal(Strip(o))
		if err != nil {
			return 0, err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return 0, fmt.Errorf("writing the snapshot: %w", err)
		}
	}
	return len(objs), nil
}

// Marshal writes o as YAML without the empty fields typed objects carry (a null
// creationTimestamp, an empty status).
func Marshal(o client.Object) ([]byte, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", input.KeyOf(o), err)
	}
	if meta, ok := m["metadata"].(map[string]any); ok && meta["creationTimestamp"] == nil {
		delete(meta, "creationTimestamp")
	}
	for _, k := range []string{"spec", "status"} {
		if v, ok := m[k].(map[string]any); ok && len(v) == 0 {
			delete(m, k)
		}
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", input.KeyOf(o), err)
	}
	return b, nil
}

// Strip returns a copy of o with only what the operator's decisions read.
func Strip(o client.Object) client.Object {
	o = o.DeepCopyObject().(client.Object)
	gvk := o.GetObjectKind().GroupVersionKind()
	stripMeta(o)
	switch t := o.(type) {
	case *corev1.Namespace:
		t.Spec, t.Status = corev1.NamespaceSpec{}, corev1.NamespaceStatus{}
	case *corev1.Pod:
		t.Spec = stripPodSpec(t.Spec)
		t.Status = corev1.PodStatus{Phase: t.Status.Phase, PodIP: t.Status.PodIP, PodIPs: t.Status.PodIPs}
	case *corev1.Service:
		t.Status = corev1.ServiceStatus{}
	case *appsv1.Deployment:
		t.Spec = appsv1.DeploymentSpec{Replicas: t.Spec.Replicas, Selector: t.Spec.Selector, Template: stripTemplate(t.Spec.Template)}
		t.Status = appsv1.DeploymentStatus{}
	case *appsv1.ReplicaSet:
		t.Spec = appsv1.ReplicaSetSpec{Replicas: t.Spec.Replicas, Selector: t.Spec.Selector, Template: stripTemplate(t.Spec.Template)}
		t.Status = appsv1.ReplicaSetStatus{}
	case *appsv1.StatefulSet:
		t.Spec = appsv1.StatefulSetSpec{Replicas: t.Spec.Replicas, Selector: t.Spec.Selector, Template: stripTemplate(t.Spec.Template), ServiceName: t.Spec.ServiceName}
		t.Status = appsv1.StatefulSetStatus{}
	case *appsv1.DaemonSet:
		t.Spec = appsv1.DaemonSetSpec{Selector: t.Spec.Selector, Template: stripTemplate(t.Spec.Template)}
		t.Status = appsv1.DaemonSetStatus{}
	case *batchv1.Job:
		t.Spec = batchv1.JobSpec{Selector: t.Spec.Selector, Template: stripTemplate(t.Spec.Template)}
		t.Status = batchv1.JobStatus{}
	case *batchv1.CronJob:
		t.Spec = batchv1.CronJobSpec{Schedule: t.Spec.Schedule, JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: t.Spec.JobTemplate.ObjectMeta,
			Spec:       batchv1.JobSpec{Selector: t.Spec.JobTemplate.Spec.Selector, Template: stripTemplate(t.Spec.JobTemplate.Spec.Template)},
		}}
		t.Status = batchv1.CronJobStatus{}
	case *networkingv1.NetworkPolicy:
		// The spec is the policy; there is no status worth keeping.
	case *v2beta1.ClientIntents:
		t.Status = v2beta1.ClientIntentsStatus{}
	case *v2beta1.ProtectedService:
		t.Status = v2beta1.ProtectedServiceStatus{}
	case *v2beta1.KafkaServerConfig:
		t.Status = v2beta1.KafkaServerConfigStatus{}
	}
	o.GetObjectKind().SetGroupVersionKind(gvk)
	return o
}

// stripMeta keeps identity, labels, annotations, owners and the times that order pods.
func stripMeta(o client.Object) {
	o.SetManagedFields(nil)
	o.SetResourceVersion("")
	o.SetGeneration(0)
	o.SetFinalizers(nil)
	o.SetSelfLink("")
	if a := o.GetAnnotations(); a[lastApplied] != "" {
		delete(a, lastApplied)
		if len(a) == 0 {
			a = nil
		}
		o.SetAnnotations(a)
	}
}

func stripTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: t.Labels, Annotations: t.Annotations},
		Spec:       stripPodSpec(t.Spec),
	}
}

// stripPodSpec keeps what names a pod's identity and its ports: the service account,
// host networking and each container's name and ports.
func stripPodSpec(s corev1.PodSpec) corev1.PodSpec {
	out := corev1.PodSpec{ServiceAccountName: s.ServiceAccountName, HostNetwork: s.HostNetwork}
	for _, c := range s.Containers {
		out.Containers = append(out.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
	}
	return out
}
