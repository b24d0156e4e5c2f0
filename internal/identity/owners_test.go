package identity

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apiServer answers Lists of kinds by a fixed verdict and Gets from a set of objects,
// counting the Lists: the owner rule's whole view of the cluster.
type apiServer struct {
	listErr map[string]error // by kind; missing: the kind may be listed
	objects map[string][]metav1.OwnerReference
	lists   map[string]int
}

func (a *apiServer) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	refs, ok := a.objects[kind+"/"+key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: kind}, key.Name)
	}
	obj.SetOwnerReferences(refs)
	return nil
}

func (a *apiServer) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	kind := list.GetObjectKind().GroupVersionKind().Kind
	kind = kind[:len(kind)-len("List")]
	a.lists[kind]++
	return a.listErr[kind]
}

func refs(apiVersion, kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{ref(apiVersion, kind, name)}
}

// Owners follows built-in kinds and every kind it may list to the root; a kind it may not
// read (refused, or not served) is the root, asked about once; a failure that says
// nothing about the kind is an error, never a shorter identity.
func TestOwnersRule(t *testing.T) {
	gr := schema.GroupResource{Group: "test.dev", Resource: "things"}
	api := &apiServer{
		listErr: map[string]error{
			"Gadget": apierrors.NewForbidden(gr, "", errors.New("no")),
			"Gone":   &apimeta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "test.dev", Kind: "Gone"}},
			"Flaky":  apierrors.NewServiceUnavailable("etcd"),
		},
		objects: map[string][]metav1.OwnerReference{
			"ReplicaSet/shop-v2-1": refs("test.dev/v1", "Widget", "shop-v2"),
			"Widget/shop-v2":       refs("test.dev/v1", "Widget", "shop"),
			"Widget/shop":          nil,
			"ReplicaSet/lab-1":     refs("test.dev/v1", "Gadget", "lab-g"),
			"Gadget/lab-g":         refs("test.dev/v1", "Widget", "lab"),
			"ReplicaSet/old-1":     refs("test.dev/v1", "Gone", "old"),
			"ReplicaSet/odd-1":     refs("test.dev/v1", "Flaky", "odd"),
		},
		lists: map[string]int{},
	}
	o := NewOwners(api, api, logr.Discard())
	pod := func(rs string) *metav1.ObjectMeta {
		return &metav1.ObjectMeta{Namespace: "ns", Name: rs + "-x", OwnerReferences: refs("apps/v1", "ReplicaSet", rs)}
	}
	for rs, want := range map[string]Identity{
		"shop-v2-1": {Namespace: "ns", Name: "shop", Kind: "Widget"},
		"lab-1":     {Namespace: "ns", Name: "lab-g", Kind: "Gadget"},
		"old-1":     {Namespace: "ns", Name: "old", Kind: "Gone"},
		"gone-1":    {Namespace: "ns", Name: "gone-1", Kind: "ReplicaSet"},
	} {
		for range 2 {
			got, err := Resolve(context.Background(), pod(rs), o.Lookup)
			if err != nil || got != want {
				t.Errorf("%s: got %v, %v; want %v", rs, got, err, want)
			}
		}
	}
	if _, err := Resolve(context.Background(), pod("odd-1"), o.Lookup); err == nil {
		t.Error("a List that failed for now gave an identity")
	}
	if api.lists["ReplicaSet"] != 0 || api.lists["Widget"] != 1 || api.lists["Gadget"] != 1 || api.lists["Gone"] != 1 {
		t.Errorf("Lists asked: %v; want none for built-in kinds and one for each other kind", api.lists)
	}
}
