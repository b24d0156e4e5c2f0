package aggregator

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// noOwners is an owner lookup for pods whose owners are not followed.
func noOwners(context.Context, string, schema.GroupVersionKind, string) ([]metav1.OwnerReference, bool, error) {
	return nil, false, nil
}

func testPod(i int, phase corev1.PodPhase) *corev1.Pod {
	yes := true
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: fmt.Sprintf("ns-%d", i%100), Name: fmt.Sprintf("w%d-5d8f-%d", i%10_000, i), UID: types.UID(fmt.Sprintf("uid-%d", i)),
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: fmt.Sprintf("w%d-5d8f", i%10_000), Controller: &yes}},
			Annotations:       map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
		},
		Spec:   corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%500), Containers: []corev1.Container{{Name: "app", Image: "registry/app:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: phase, PodIP: ip.String(), PodIPs: []corev1.PodIP{{IP: ip.String()}}},
	}
}

// A finished pod gives its address back though its object stays.
func TestFinishedPodGivesItsAddressBack(t *testing.T) {
	cl := NewCluster(noOwners)
	p := testPod(1, corev1.PodRunning)
	cl.SetPod(p)
	ip := netip.MustParseAddr(p.Status.PodIP)
	if got := cl.pods.At(ip, time.Now()); len(got) != 1 {
		t.Fatalf("running pod's address not held")
	}
	p.Status.Phase = corev1.PodSucceeded
	cl.SetPod(p)
	if got := cl.pods.At(ip, time.Now().Add(time.Millisecond)); len(got) != 0 {
		t.Errorf("finished pod still holds its address")
	}
	peer, pod, err := cl.peer(context.Background(), ip, 0, time.Now().Add(-time.Minute), "")
	if err != nil || pod != p.Namespace+"/"+p.Name || peer.Name != "w1-5d8f" || peer.WorkloadKind != "ReplicaSet" {
		t.Errorf("before it finished: %+v %q %v", peer, pod, err)
	}
}

// TrimPod keeps what resolution reads and drops the rest.
func TestTrimPod(t *testing.T) {
	p := testPod(7, corev1.PodRunning)
	p.Annotations["intents.otterize.com/workload-name"] = "named"
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "proxy"})
	o, err := TrimPod(p)
	if err != nil {
		t.Fatal(err)
	}
	tp := o.(*corev1.Pod)
	if len(tp.Annotations) != 1 || tp.Annotations["intents.otterize.com/workload-name"] != "named" {
		t.Errorf("annotations %v", tp.Annotations)
	}
	if len(tp.Spec.Containers) != 1 || tp.Spec.Containers[0].Image != "" || tp.Spec.Containers[0].Ports[0].ContainerPort != 8080 {
		t.Errorf("containers %+v", tp.Spec.Containers)
	}
	if tp.UID != p.UID || tp.Status.PodIP != p.Status.PodIP || tp.Spec.NodeName != p.Spec.NodeName || len(tp.OwnerReferences) != 1 || !tp.CreationTimestamp.Equal(&p.CreationTimestamp) {
		t.Errorf("trimmed pod lost what resolution reads: %+v", tp)
	}
	if o, _ := TrimPod("not a pod"); o != "not a pod" {
		t.Errorf("non-pod changed")
	}
}

// BenchmarkClusterMemory50kPods reports the heap the address timelines hold for 50,000
// running pods of 10,000 workloads, as the informer's trimmed pods feed them.
func BenchmarkClusterMemory50kPods(b *testing.B) {
	const pods = 50_000
	in := make([]*corev1.Pod, pods)
	for i := range in {
		o, _ := TrimPod(testPod(i, corev1.PodRunning))
		in[i] = o.(*corev1.Pod)
	}
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cl := NewCluster(noOwners)
		for _, p := range in {
			cl.SetPod(p)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		b.ReportMetric(held/(1<<20), "MiB-heap")
		b.ReportMetric(held/pods, "B/pod")
		runtime.KeepAlive(cl)
	}
}
