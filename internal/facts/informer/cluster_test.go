package informer

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/intentguard/intentguard/internal/identity"
)

// A pod resolves to the same identity through owners as the cache keeps them (slimOwner)
// as through the owners the API server sends.
func TestSlimOwnersResolveAsTheWholeOwners(t *testing.T) {
	yes, no := true, false
	full := map[string]*metav1.PartialObjectMetadata{
		"ReplicaSet/web-abc": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-abc", UID: "u1", ResourceVersion: "5",
			Labels:      map[string]string{"app": "web", "pod-template-hash": "abc"},
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "3"},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "example.com/v1", Kind: "Audit", Name: "audit", UID: "u9", Controller: &no},
				{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "u2", Controller: &yes, BlockOwnerDeletion: &yes},
			}}},
		"Job/report-1": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "report-1",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", Controller: &yes}}}},
		"CronJob/report": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "report", Labels: map[string]string{"team": "a"}}},
	}
	slim := map[string]*metav1.PartialObjectMetadata{}
	for k, m := range full {
		out, err := slimOwner(m.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		s := out.(*metav1.PartialObjectMetadata)
		if len(s.Labels)+len(s.Annotations) != 0 || s.Name != m.Name || s.Namespace != m.Namespace || s.ResourceVersion != m.ResourceVersion {
			t.Errorf("%s slimmed to %+v", k, s.ObjectMeta)
		}
		slim[k] = s
	}
	lookupIn := func(objs map[string]*metav1.PartialObjectMetadata) identity.OwnerLookup {
		return func(_ context.Context, _ string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
			o, ok := objs[gvk.Kind+"/"+name]
			if !ok {
				return nil, false, nil
			}
			return o.OwnerReferences, true, nil
		}
	}
	for _, pod := range []*metav1.PartialObjectMetadata{
		podMeta("ns", "web-abc-1", ownedBy("apps/v1", "ReplicaSet", "web-abc")),
		podMeta("ns", "report-1-x", ownedBy("batch/v1", "Job", "report-1")),
	} {
		want, err := identity.Resolve(context.Background(), pod, lookupIn(full))
		if err != nil {
			t.Fatal(err)
		}
		got, err := identity.Resolve(context.Background(), pod, lookupIn(slim))
		if err != nil {
			t.Fatal(err)
		}
		if got != want || want.Kind == "Pod" {
			t.Errorf("pod %s: %v through slim owners, %v through whole ones", pod.Name, got, want)
		}
	}
}
