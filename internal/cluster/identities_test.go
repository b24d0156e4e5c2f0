package cluster

import (
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

// drain returns the changes published so far.
func drain(x *Identities) []PodChange {
	var out []PodChange
	for _, ch := range x.subs {
		for len(ch) > 0 {
			out = append(out, (<-ch).Object)
		}
	}
	return out
}

var rsKind = schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}

// A pod seen before its ReplicaSet resolves to the ReplicaSet; when the ReplicaSet lands,
// the pod is resolved again to the Deployment and the change is published.
func TestOwnerArrivingAfterItsPod(t *testing.T) {
	x := NewIdentities(nil, nil, logr.Discard())
	x.Subscribe()
	x.podChanged(podMeta("ns", "web-abc-1", ownedBy("apps/v1", "ReplicaSet", "web-abc")))
	if got, _ := x.Of("ns", "web-abc-1"); got != (identity.Identity{Namespace: "ns", Name: "web-abc", Kind: "ReplicaSet"}) {
		t.Fatalf("before the ReplicaSet: %v", got)
	}
	drain(x)
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "web")))
	want := identity.Identity{Namespace: "ns", Name: "web", Kind: "Deployment"}
	if got, _ := x.Of("ns", "web-abc-1"); got != want {
		t.Fatalf("after the ReplicaSet: %v, want %v", got, want)
	}
	changes := drain(x)
	if len(changes) != 1 || changes[0].Old.Name != "web-abc" || changes[0].New != want {
		t.Fatalf("changes = %+v", changes)
	}
	if pods := x.PodsNamed("ns", "web"); len(pods) != 1 || len(x.PodsNamed("ns", "web-abc")) != 0 {
		t.Fatalf("PodsNamed(web) = %d pods, PodsNamed(web-abc) = %d", len(pods), len(x.PodsNamed("ns", "web-abc")))
	}
	// An update that changes nothing publishes nothing.
	x.ownerChanged(rsKind, objMeta("ns", "web-abc", ownedBy("apps/v1", "Deployment", "web")))
	if c := drain(x); len(c) != 0 {
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
