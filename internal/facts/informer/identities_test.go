package informer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/internal/identity"
)

func ownedBy(apiVersion, kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes}}
}

func podMeta(ns, name string, owners []metav1.OwnerReference) *metav1.PartialObjectMetadata {
	p := PodMeta()
	p.Namespace, p.Name, p.OwnerReferences, p.ResourceVersion = ns, name, owners, "1"
	return p
}

func objMeta(ns, name string, owners []metav1.OwnerReference) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.Namespace, o.Name, o.OwnerReferences = ns, name, owners
	return o
}

// recorder is a started controller source that keeps the changes the index hands it.
type recorder struct {
	mu      sync.Mutex
	changes []PodChange
}

// record starts a source on the index, as a controller does when it starts.
func record(t *testing.T, x *Identities) *recorder {
	t.Helper()
	r := &recorder{}
	h := handler.TypedFuncs[PodChange, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[PodChange], _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.mu.Lock()
			r.changes = append(r.changes, e.Object)
			r.mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := x.Source(h).Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// drain returns the changes handed over since the last drain.
func (r *recorder) drain() []PodChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

var rsKind = schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}

// A pod seen before its ReplicaSet resolves to the ReplicaSet; when the ReplicaSet lands,
// the pod is resolved again to the Deployment and the change is published.
func TestOwnerArrivingAfterItsPod(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	rec := record(t, x)
	x.podChanged(podMeta("ns", "web-abc-1", ownedBy("apps/v1", "ReplicaSet", "web-abc")))
	if got, _ := x.Of("ns", "web-abc-1"); got != (identity.Identity{Namespace: "ns", Name: "web-abc", Kind: "ReplicaSet"}) {
		t.Fatalf("before the ReplicaSet: %v", got)
	}
	rec.drain()
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "web")))
	want := identity.Identity{Namespace: "ns", Name: "web", Kind: "Deployment"}
	if got, _ := x.Of("ns", "web-abc-1"); got != want {
		t.Fatalf("after the ReplicaSet: %v, want %v", got, want)
	}
	changes := rec.drain()
	if len(changes) != 1 || changes[0].Old.Name != "web-abc" || changes[0].New != want {
		t.Fatalf("changes = %+v", changes)
	}
	if pods := x.PodsNamed("ns", "web"); len(pods) != 1 || len(x.PodsNamed("ns", "web-abc")) != 0 {
		t.Fatalf("PodsNamed(web) = %d pods, PodsNamed(web-abc) = %d", len(pods), len(x.PodsNamed("ns", "web-abc")))
	}
	// An update that changes nothing publishes nothing.
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "web")))
	if c := rec.drain(); len(c) != 0 {
		t.Fatalf("no-op owner update published %+v", c)
	}
}

// Every owner kind resolves to the root of the chain, including kinds the operator has
// no type for; a chain through an owner that went away stops there.
func TestRootOwnerOfEveryKind(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	x.ownerChanged(schema.GroupKind{Group: "batch", Kind: "Job"}, objMeta("ns", "report-29000", ownedBy("batch/v1", "CronJob", "report")))
	x.ownerChanged(schema.GroupKind{Group: "batch", Kind: "CronJob"}, objMeta("ns", "report", nil))
	x.ownerChanged(rsKind, objMeta("ns", "canary-5d8", ownedBy("argoproj.io/v1alpha1", "Rollout", "canary")))
	x.ownerChanged(schema.GroupKind{Group: "core.strimzi.io", Kind: "StrimziPodSet"}, objMeta("ns", "cluster-kafka", ownedBy("kafka.strimzi.io/v1beta2", "Kafka", "cluster")))
	x.ownerChanged(rsKind, objMeta("ns", "lonely", nil))
	cases := map[string]struct {
		owners []metav1.OwnerReference
		want   identity.Identity
	}{
		"cron":    {ownedBy("batch/v1", "Job", "report-29000"), identity.Identity{Namespace: "ns", Name: "report", Kind: "CronJob"}},
		"job":     {ownedBy("batch/v1", "Job", "once"), identity.Identity{Namespace: "ns", Name: "once", Kind: "Job"}},
		"rollout": {ownedBy("apps/v1", "ReplicaSet", "canary-5d8"), identity.Identity{Namespace: "ns", Name: "canary", Kind: "Rollout"}},
		"strimzi": {ownedBy("core.strimzi.io/v1beta2", "StrimziPodSet", "cluster-kafka"), identity.Identity{Namespace: "ns", Name: "cluster", Kind: "Kafka"}},
		"rs":      {ownedBy("apps/v1", "ReplicaSet", "lonely"), identity.Identity{Namespace: "ns", Name: "lonely", Kind: "ReplicaSet"}},
		"bare":    {nil, identity.Identity{Namespace: "ns", Name: "bare", Kind: "Pod"}},
	}
	for name, c := range cases {
		x.podChanged(podMeta("ns", name+"-pod", c.owners))
		if name == "bare" {
			x.podChanged(podMeta("ns", "bare", nil))
			c.want.Name = "bare"
		}
	}
	for name, c := range cases {
		pod := name + "-pod"
		if name == "bare" {
			pod = "bare"
		}
		if got, ok := x.Of("ns", pod); !ok || got != c.want {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
	// The CronJob goes away: its Job's pods now count as the Job's.
	x.ownerDeleted(schema.GroupKind{Group: "batch", Kind: "Job"}, objMeta("ns", "report-29000", nil))
	if got, _ := x.Of("ns", "cron-pod"); got.Name != "report-29000" || got.Kind != "Job" {
		t.Errorf("after the Job went away: %v", got)
	}
}

func TestAnnotationOverridesOwners(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	p := podMeta("ns", "p", ownedBy("apps/v1", "ReplicaSet", "web-1"))
	p.Annotations = map[string]string{identity.WorkloadNameAnnotation: "billing"}
	x.podChanged(p)
	if got, _ := x.Of("ns", "p"); got != (identity.Identity{Namespace: "ns", Name: "billing"}) {
		t.Fatalf("got %v", got)
	}
}

// A controller that has not started (on a replica that is not the leader) never holds
// the index up, however many pods change; when it starts it is handed every pod's
// identity, then every later change.
func TestControllerStartingLateMissesNothing(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	early := record(t, x)
	const pods = 5000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range pods {
			x.podChanged(podMeta("ns", fmt.Sprintf("p-%d", i), ownedBy("apps/v1", "ReplicaSet", fmt.Sprintf("rs-%d", i%7))))
		}
		x.podDeleted(podMeta("ns", "p-0", nil))
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the index waited on a controller that had not started")
	}
	if got := len(early.drain()); got != pods+1 {
		t.Errorf("a started controller was handed %d changes, want %d", got, pods+1)
	}
	late := record(t, x)
	x.ownerChanged(rsKind, objMeta("ns", "rs-3", ownedBy("apps/v1", "Deployment", "web")))
	seen := map[string]identity.Identity{}
	for _, c := range late.drain() {
		seen[c.Name] = c.New
	}
	if len(seen) != pods-1 {
		t.Fatalf("a late controller saw %d pods, want %d", len(seen), pods-1)
	}
	if _, ok := seen["p-0"]; ok {
		t.Error("a late controller was handed a pod that had gone")
	}
	if got := seen["p-3"]; got != (identity.Identity{Namespace: "ns", Name: "web", Kind: "Deployment"}) {
		t.Errorf("a late controller's last word on p-3 is %v, want the Deployment web", got)
	}
	if got := seen["p-4"]; got != (identity.Identity{Namespace: "ns", Name: "rs-4", Kind: "ReplicaSet"}) {
		t.Errorf("a late controller's last word on p-4 is %v", got)
	}
}

// Pods of one identity come, change and go in any order; the index finds exactly those
// that exist, under the identity their owners give them at the time.
func TestPodsOfOneIdentityFollowTheirChanges(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "web")))
	live := map[string]bool{}
	for i := range 40 {
		name := fmt.Sprintf("web-abc-%d", i%13)
		switch {
		case i%5 == 4:
			x.podDeleted(podMeta("ns", name, nil))
			delete(live, name)
		default:
			p := podMeta("ns", name, ownedBy("apps/v1", "ReplicaSet", "web-abc"))
			p.ResourceVersion = fmt.Sprint(i)
			p.Labels = map[string]string{"rev": fmt.Sprint(i % 3)}
			x.podChanged(p)
			live[name] = true
		}
		got := map[string]bool{}
		for _, p := range x.PodsNamed("ns", "web") {
			if got[p.Meta.Name] {
				t.Fatalf("step %d: pod %s found twice", i, p.Meta.Name)
			}
			got[p.Meta.Name] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(live) {
			t.Fatalf("step %d: pods of web %v, want %v", i, got, live)
		}
	}
	// The Deployment's ReplicaSet changes owner: every pod moves to the new identity.
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "site")))
	if n := len(x.PodsNamed("ns", "web")); n != 0 {
		t.Errorf("%d pods left under the old identity", n)
	}
	if got, want := len(x.PodsNamed("ns", "site")), len(live); got != want {
		t.Errorf("%d pods under the new identity, want %d", got, want)
	}
}
