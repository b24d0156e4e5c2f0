package identity

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type object struct {
	kind, name string
	owners     []metav1.OwnerReference
}

func ref(apiVersion, kind, name string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes}
}

// lookupOf serves owner references from a fixed set of objects, like a cache would.
func lookupOf(objs ...object) OwnerLookup {
	return func(_ context.Context, _ string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
		for _, o := range objs {
			if o.kind == gvk.Kind && o.name == name {
				return o.owners, true, nil
			}
		}
		return nil, false, nil
	}
}

func TestResolve(t *testing.T) {
	deployment := object{kind: "ReplicaSet", name: "web-5d8f", owners: []metav1.OwnerReference{ref("apps/v1", "Deployment", "web")}}
	cronJob := object{kind: "Job", name: "report-2900", owners: []metav1.OwnerReference{ref("batch/v1", "CronJob", "report")}}
	custom := object{kind: "Deployment", name: "db", owners: []metav1.OwnerReference{ref("example.com/v1", "Database", "orders-db")}}
	lookup := lookupOf(deployment, cronJob, custom, object{kind: "ReplicaSet", name: "db-1", owners: []metav1.OwnerReference{ref("apps/v1", "Deployment", "db")}})

	tests := []struct {
		name        string
		annotations map[string]string
		owners      []metav1.OwnerReference
		want        Identity
	}{
		{"bare pod is its own identity", nil, nil, Identity{"ns", "pod-a", "Pod"}},
		{"deployment through its replicaset", nil, []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "web-5d8f")}, Identity{"ns", "web", "Deployment"}},
		{"cronjob through its job", nil, []metav1.OwnerReference{ref("batch/v1", "Job", "report-2900")}, Identity{"ns", "report", "CronJob"}},
		{"statefulset owns pods directly", nil, []metav1.OwnerReference{ref("apps/v1", "StatefulSet", "kafka")}, Identity{"ns", "kafka", "StatefulSet"}},
		{"custom root kind", nil, []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "db-1")}, Identity{"ns", "orders-db", "Database"}},
		{"owner not in cache stops the walk", nil, []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "gone-1")}, Identity{"ns", "gone-1", "ReplicaSet"}},
		{"workload-name annotation wins", map[string]string{WorkloadNameAnnotation: "checkout"}, []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "web-5d8f")}, Identity{"ns", "checkout", ""}},
		{"older service-name annotation", map[string]string{ServiceNameAnnotation: "legacy"}, nil, Identity{"ns", "legacy", ""}},
		{"workload-name beats service-name", map[string]string{ServiceNameAnnotation: "old", WorkloadNameAnnotation: "new"}, nil, Identity{"ns", "new", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &metav1.ObjectMeta{Namespace: "ns", Name: "pod-a", Annotations: tt.annotations, OwnerReferences: tt.owners}
			got, err := Resolve(context.Background(), pod, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveStopsOnOwnerCycle(t *testing.T) {
	a := object{kind: "Thing", name: "a", owners: []metav1.OwnerReference{ref("x/v1", "Thing", "b")}}
	b := object{kind: "Thing", name: "b", owners: []metav1.OwnerReference{ref("x/v1", "Thing", "a")}}
	pod := &metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: []metav1.OwnerReference{ref("x/v1", "Thing", "a")}}
	got, err := Resolve(context.Background(), pod, lookupOf(a, b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "Thing" {
		t.Fatalf("got %+v", got)
	}
}

func TestResolveReportsLookupErrors(t *testing.T) {
	boom := errors.New("cache not synced")
	pod := &metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: []metav1.OwnerReference{ref("apps/v1", "ReplicaSet", "r")}}
	_, err := Resolve(context.Background(), pod, func(context.Context, string, schema.GroupVersionKind, string) ([]metav1.OwnerReference, bool, error) {
		return nil, false, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapped %v", err, boom)
	}
}

func TestMatches(t *testing.T) {
	id := Identity{"ns", "web", "Deployment"}
	for _, tt := range []struct {
		ns, name, kind string
		want           bool
	}{
		{"ns", "web", "", true},
		{"ns", "web", "Deployment", true},
		{"ns", "web", "StatefulSet", false},
		{"other", "web", "", false},
		{"ns", "api", "", false},
	} {
		if got := id.Matches(tt.ns, tt.name, tt.kind); got != tt.want {
			t.Errorf("Matches(%q,%q,%q) = %v", tt.ns, tt.name, tt.kind, got)
		}
	}
}
