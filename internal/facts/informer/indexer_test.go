package informer_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// The indexes registered through ClusterWideIndexer answer controller-runtime's cache
// queries across namespaces, as those of its own FieldIndexer do: the cache still looks
// values up under the key and index names ClusterWideIndexer writes.
func TestClusterWideIndexer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{WithoutControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	scheme := informer.Scheme()
	admin, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Two namespaces with a client of the same name calling servers of the same name.
	for _, ns := range []string{"one", "two"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
		ci.Spec.Workload.Name = "web"
		ci.Spec.Targets = []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "api"}}, {Kubernetes: &v2beta1.KubernetesTarget{Name: "db.one"}}}
		if err := admin.Create(ctx, ci); err != nil {
			t.Fatal(err)
		}
	}
	c, err := cache.New(cp.Config, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := informer.RegisterIndexes(ctx, informer.ClusterWideIndexer{Cache: c}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache not synced")
	}
	for _, tc := range []struct {
		index, value string
		want         []string
	}{
		{informer.IndexClient, informer.NameKey("one", "web"), []string{"one/web"}},
		{informer.IndexClient, informer.NameKey("two", "web"), []string{"two/web"}},
		{informer.IndexServerName, informer.NameKey("one", "db"), []string{"one/web", "two/web"}},
		{informer.IndexServerName, informer.NameKey("two", "api"), []string{"two/web"}},
		{informer.IndexServerNamespace, "one", []string{"one/web", "two/web"}},
		{informer.IndexServer, informer.ServerIndexKey(intent.Server{Ref: intent.Ref{Namespace: "one", Name: "api"}}), []string{"one/web"}},
		{informer.IndexClient, informer.NameKey("three", "web"), nil},
	} {
		var list v2beta1.ClientIntentsList
		if err := c.List(ctx, &list, client.MatchingFields{tc.index: tc.value}); err != nil {
			t.Fatalf("%s=%s: %v", tc.index, tc.value, err)
		}
		var got []string
		for _, ci := range list.Items {
			got = append(got, ci.Namespace+"/"+ci.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s=%s: got %v, want %v", tc.index, tc.value, got, tc.want)
		}
	}
}
