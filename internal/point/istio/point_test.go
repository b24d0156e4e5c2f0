package istio

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
)

func intents(gen int64) *v2beta1.ClientIntents {
	ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client", Generation: gen}}
	ci.Spec.Workload.Name = "client"
	ci.Spec.Targets = []v2beta1.Target{
		{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx"}},
		{Kafka: &v2beta1.KafkaTarget{Name: "kafka"}},
	}
	return ci
}

// TestOutcomesReadTheRecordOfTheGeneration: a target is reported from the record only
// when the record planned that generation of the ClientIntents; otherwise it is in hand.
// Kafka targets are not the point's.
func TestOutcomesReadTheRecordOfTheGeneration(t *testing.T) {
	p := newPoint()
	sub := p.Subscribe()
	server := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}}
	key := types.NamespacedName{Namespace: "shop", Name: "client"}

	got, _ := p.Outcomes(context.Background(), intents(1))
	if len(got) != 1 || got[0].State != enforcement.Waiting || !got[0].InHand || got[0].Target != "kubernetes nginx" {
		t.Fatalf("before any record: %+v", got)
	}
	enforced := enforcement.TargetState{State: enforcement.Enforced, Message: "written"}
	p.record(server, &record{intents: map[types.NamespacedName]int64{key: 1}, clients: map[types.NamespacedName]enforcement.TargetState{key: enforced}}, false)
	if len(sub) != 1 {
		t.Fatalf("%d notices for a new record, want 1", len(sub))
	}
	<-sub
	got, _ = p.Outcomes(context.Background(), intents(1))
	if len(got) != 1 || got[0].State != enforcement.Enforced || got[0].Message != "written" {
		t.Fatalf("recorded generation: %+v", got)
	}
	if got, _ = p.Outcomes(context.Background(), intents(2)); got[0].State != enforcement.Waiting || !got[0].InHand {
		t.Fatalf("newer generation: %+v", got)
	}

	// The same record again notifies nobody; a changed state notifies the ClientIntents.
	p.record(server, &record{intents: map[types.NamespacedName]int64{key: 1}, clients: map[types.NamespacedName]enforcement.TargetState{key: enforced}}, false)
	if len(sub) != 0 {
		t.Fatalf("%d notices for an unchanged record", len(sub))
	}
	waiting := enforcement.TargetState{State: enforcement.Waiting, Message: "outside the mesh"}
	p.record(server, &record{intents: map[types.NamespacedName]int64{key: 1}, clients: map[types.NamespacedName]enforcement.TargetState{key: waiting}}, true)
	if len(sub) != 1 || !p.lookFirst(server) {
		t.Fatalf("%d notices for a changed state (want 1), look first %v", len(sub), p.lookFirst(server))
	}
	<-sub
	// The record goes when nothing refers to the server: the ClientIntents is told.
	p.record(server, nil, false)
	if len(sub) != 1 || p.lookFirst(server) {
		t.Fatalf("%d notices for a removed record", len(sub))
	}
}

// TestSlimPodKeepsWhatMeshDetectionReads: the cached pod keeps its metadata, its
// ServiceAccount, container names and init containers' restart policy, and nothing else.
func TestSlimPodKeepsWhatMeshDetectionReads(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", Labels: map[string]string{"app": "x"},
			Annotations: map[string]string{"sidecar.istio.io/status": "{}"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "sa",
			Containers:         []corev1.Container{{Name: "app", Image: "nginx", Env: []corev1.EnvVar{{Name: "SECRET", Value: "x"}}}},
			InitContainers:     []corev1.Container{{Name: "istio-proxy", Image: "proxy", RestartPolicy: &always}},
		},
	}
	out, err := slimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	slim := out.(*corev1.Pod)
	switch {
	case slim.Spec.ServiceAccountName != "sa", slim.Labels["app"] != "x", slim.Annotations["sidecar.istio.io/status"] != "{}":
		t.Fatalf("metadata or ServiceAccount lost: %+v", slim)
	case len(slim.Spec.Containers) != 1 || slim.Spec.Containers[0].Name != "app" || slim.Spec.Containers[0].Image != "" || slim.Spec.Containers[0].Env != nil:
		t.Fatalf("containers: %+v", slim.Spec.Containers)
	case len(slim.Spec.InitContainers) != 1 || slim.Spec.InitContainers[0].RestartPolicy == nil || slim.Spec.InitContainers[0].Image != "":
		t.Fatalf("init containers: %+v", slim.Spec.InitContainers)
	case slim.ManagedFields != nil:
		t.Fatal("managed fields kept")
	}
	meta := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "p", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	if out, err := slimPod(meta); err != nil || out.(*metav1.PartialObjectMetadata).ManagedFields != nil {
		t.Fatalf("metadata-only pod: managed fields kept (%v)", err)
	}
}

// TestAWaitCountsOnlyOnceTheQueueStops: a server waiting its turn while the reconciler
// works through a burst counts its wait from now, so status writes no Pending that a Ready
// replaces a moment later; once the queue stops, from when it was taken in hand.
func TestAWaitCountsOnlyOnceTheQueueStops(t *testing.T) {
	p := newPoint()
	within := 100 * time.Millisecond
	p.activity.Within = within
	// The reconciler ran once and went idle (before its first reconcile it counts as
	// starting, which is moving).
	p.activity.Begin()
	p.activity.End()
	time.Sleep(2 * within)
	server := intent.Server{Ref: intent.Ref{Namespace: "shop", Name: "nginx"}}
	taken := time.Now().Add(-time.Minute)
	p.pending[server] = taken
	since := func() time.Time {
		got, _ := p.Outcomes(context.Background(), intents(1))
		if len(got) != 1 || !got[0].InHand {
			t.Fatalf("outcomes %+v, want one target in hand", got)
		}
		return got[0].Since
	}
	if got := since(); !got.Equal(taken) {
		t.Fatalf("with an idle queue: in hand since %v, want %v", got, taken)
	}
	p.activity.Begin() // another server is reconciled
	if got := since(); time.Since(got) > time.Second {
		t.Fatalf("while another server is reconciled: in hand since %v, want about now", got)
	}
	p.activity.End()
	if got := since(); time.Since(got) > time.Second {
		t.Fatalf("just after a reconcile ended: in hand since %v, want about now", got)
	}
	time.Sleep(2 * within)
	p.activity.Hold(true) // a burst held back to be queued together
	if got := since(); time.Since(got) > time.Second {
		t.Fatalf("while a burst is held: in hand since %v, want about now", got)
	}
	p.activity.Hold(false)
	if got := since(); !got.Equal(taken) {
		t.Fatalf("once the queue stopped: in hand since %v, want %v", got, taken)
	}
}
