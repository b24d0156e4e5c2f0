package informer_test

import (
	"context"
	"k8s.io/apimachinery/pkg/api/equality"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// What the operator reads from its cache in place of controller-runtime's own ways
// answers as they do, against a real API server: the indexes of ClusterWideIndexer, and
// the workloads WorkloadsSelecting reads from the informers' stores.
func TestCacheReads(t *testing.T) {
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
	for i, w := range []client.Object{
		deployment("one", "web", map[string]string{"app": "web"}),
		deployment("one", "web-canary", map[string]string{"app": "web", "track": "canary"}),
		deployment("one", "db", map[string]string{"app": "db"}),
		deployment("two", "web", map[string]string{"app": "web"}),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "one", Name: "queue"}, Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "queue"}}}},
			Template: podTemplate(map[string]string{"app": "queue"})}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "one", Name: "cache"}, Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}, Template: podTemplate(map[string]string{"app": "cache"})}},
	} {
		if err := admin.Create(ctx, w); err != nil {
			t.Fatalf("workload %d: %v", i, err)
		}
	}
	for _, p := range []struct{ ns, name, l, other string }{
		{"one", "a", "x", ""}, {"one", "b", "x", "y"}, {"one", "c", "z", ""}, {"one", "d", "", "y"}, {"two", "e", "x", ""},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Labels: map[string]string{}}, Spec: podTemplate(nil).Spec}
		if p.l != "" {
			pod.Labels["l"] = p.l
		}
		if p.other != "" {
			pod.Labels["other"] = p.other
		}
		if err := admin.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	opts := informer.CacheOptions()
	opts.Scheme = scheme
	c, err := cache.New(cp.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := informer.RegisterIndexes(ctx, informer.ClusterWideIndexer{Cache: c}); err != nil {
		t.Fatal(err)
	}
	if err := informer.RegisterPodLabelIndex(ctx, informer.ClusterWideIndexer{Cache: c}, "l"); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache not synced")
	}
	t.Run("ClusterWideIndexer", func(t *testing.T) { indexedLookups(ctx, t, c) })
	t.Run("PodsLabelled", func(t *testing.T) {
		indexed, scanned := informer.Reader{Reader: c, IndexedPodLabel: "l"}, informer.Reader{Reader: c}
		for _, sel := range []map[string]string{{"l": "x"}, {"l": "z"}, {"l": "none"}, {"l": "x", "other": "y"}, {"other": "y"}} {
			names := func(r informer.Reader) []string {
				pods, err := r.PodsLabelled(ctx, "one", sel)
				if err != nil {
					t.Fatal(err)
				}
				matched, err := r.PodsMatching(ctx, "one", sel)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, p := range pods {
					out = append(out, p.Name)
				}
				for _, p := range matched {
					out = append(out, "matching:"+p.Meta.Name)
				}
				slices.Sort(out)
				return out
			}
			got, want := names(indexed), names(scanned)
			if !slices.Equal(got, want) || (sel["l"] == "x" && len(got) == 0) {
				t.Errorf("selector %v: pods %v through the index, %v read from the namespace", sel, got, want)
			}
		}
	})
	t.Run("WorkloadsSelecting", func(t *testing.T) {
		// Informers are started by the first read, as a controller's watch does.
		inPlace := informer.Reader{Reader: c, Informers: c}
		for _, labels := range []map[string]string{{"app": "web"}, {"app": "web", "track": "canary"}, {"app": "db"}, {"app": "none"}} {
			got, err := inPlace.WorkloadsSelecting(ctx, "one", labels)
			if err != nil {
				t.Fatal(err)
			}
			want, err := informer.Reader{Reader: admin}.WorkloadsSelecting(ctx, "one", labels)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) || (labels["app"] == "web" && len(got) < 2) {
				t.Errorf("pod labels %v: workloads %v read in place, %v listed from the API server", labels, got, want)
			}
		}
		for _, key := range []client.ObjectKey{{Namespace: "one", Name: "web"}, {Namespace: "one", Name: "queue"}, {Namespace: "two", Name: "web"}, {Namespace: "one", Name: "cache"}, {Namespace: "one", Name: "none"}} {
			got, err := inPlace.Workloads(ctx, key.Namespace, key.Name)
			if err != nil {
				t.Fatal(err)
			}
			want, err := informer.Reader{Reader: admin}.Workloads(ctx, key.Namespace, key.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, want) || (key.Name != "none" && len(got) != 1) {
				t.Errorf("workloads of %s: %+v read in place, %+v from the API server", key, got, want)
			}
		}
		if done, err := informer.EachWorkloadIn(inPlace, ctx, "one", func(string, *metav1.LabelSelector) {}); !done || err != nil {
			t.Errorf("the workloads were not read in place (%v)", err)
		}
	})
}

func deployment(ns, name string, selector map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: selector}, Template: podTemplate(selector)}}
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
}

// indexedLookups checks the ClientIntents indexes of the cache c against the objects
// TestCacheReads created.
func indexedLookups(ctx context.Context, t *testing.T, c cache.Cache) {
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
