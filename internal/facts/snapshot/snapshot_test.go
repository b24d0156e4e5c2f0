package snapshot

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

func owned(apiVersion, kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes}}
}

func pod(ns, name string, labels map[string]string, owners []metav1.OwnerReference, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, OwnerReferences: owners, Annotations: annotations}}
}

func deployment(ns, name string, labels map[string]string, owners []metav1.OwnerReference) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owners},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}},
		},
	}
}

func replicaSet(ns, name string, owners []metav1.OwnerReference) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owners}}
}

// The identities of pods follow the operators' one rule, with owners looked up among
// the snapshot's objects; expectations are those of the identity package's rule.
func TestPodIdentities(t *testing.T) {
	// A custom owner, read as metadata, owned in turn by an object of another kind.
	rolloutOwnedByApp := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "blue", OwnerReferences: owned("example.com/v1", "App", "storefront")}}
	rolloutOwnedByApp.SetGroupVersionKind(schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"})
	objects := []client.Object{
		deployment("shop", "web", map[string]string{"app": "web"}, nil),
		replicaSet("shop", "web-1", owned("apps/v1", "Deployment", "web")),
		pod("shop", "web-1-a", map[string]string{"app": "web"}, owned("apps/v1", "ReplicaSet", "web-1"), nil),
		pod("shop", "named", nil, owned("apps/v1", "ReplicaSet", "web-1"), map[string]string{identity.WorkloadNameAnnotation: "checkout"}),
		pod("shop", "bare", nil, nil, nil),
		pod("shop", "rolled", nil, owned("argoproj.io/v1alpha1", "Rollout", "canary"), nil),
		rolloutOwnedByApp,
		pod("shop", "deployed", nil, owned("argoproj.io/v1alpha1", "Rollout", "blue"), nil),
		pod("shop", "orphan", nil, owned("apps/v1", "ReplicaSet", "gone-1"), nil),
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "nightly"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "nightly-1", OwnerReferences: owned("batch/v1", "CronJob", "nightly")}},
		pod("jobs", "nightly-1-x", nil, owned("batch/v1", "Job", "nightly-1"), nil),
	}
	s, err := New(objects)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]identity.Identity{
		"shop/web-1-a":     {Namespace: "shop", Name: "web", Kind: "Deployment"},
		"shop/named":       {Namespace: "shop", Name: "checkout"},
		"shop/bare":        {Namespace: "shop", Name: "bare", Kind: "Pod"},
		"shop/rolled":      {Namespace: "shop", Name: "canary", Kind: "Rollout"},
		"shop/deployed":    {Namespace: "shop", Name: "storefront", Kind: "App"},
		"shop/orphan":      {Namespace: "shop", Name: "gone-1", Kind: "ReplicaSet"},
		"jobs/nightly-1-x": {Namespace: "jobs", Name: "nightly", Kind: "CronJob"},
	}
	got := map[string]identity.Identity{}
	for _, p := range s.AllPods() {
		got[p.Meta.Namespace+"/"+p.Meta.Name] = p.Identity
		if s.Predicted(p.Meta) {
			t.Errorf("pod %s/%s is predicted, but web has a pod in the snapshot", p.Meta.Namespace, p.Meta.Name)
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: identity %v, want %v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("pods %v, want those of %v", got, want)
	}
}

// A stable workload without pods in the snapshot gets one pod from its template, which
// the cluster would run; a workload owned by another object, scaled to zero, or with
// pods (whatever their identity), gets none.
func TestPredictedPods(t *testing.T) {
	aliased := deployment("shop", "aliased", map[string]string{"app": "aliased"}, nil)
	aliased.Spec.Template.Annotations = map[string]string{identity.WorkloadNameAnnotation: "alias"}
	aliasedIdle := aliased.DeepCopy()
	aliasedIdle.Name = "idle"
	zero := int32(0)
	scaledDown := deployment("shop", "down", map[string]string{"app": "down"}, nil)
	scaledDown.Spec.Replicas = &zero
	s, err := New([]client.Object{
		deployment("shop", "web", map[string]string{"app": "web"}, nil),
		deployment("shop", "managed", map[string]string{"app": "managed"}, owned("example.com/v1", "Operator", "op")),
		deployment("shop", "api", map[string]string{"app": "api"}, nil),
		pod("shop", "api-1", map[string]string{"app": "api"}, owned("apps/v1", "Deployment", "api"), nil),
		aliased,
		pod("shop", "aliased-1", map[string]string{"app": "aliased"}, owned("apps/v1", "Deployment", "aliased"), map[string]string{identity.WorkloadNameAnnotation: "alias"}),
		scaledDown,
		aliasedIdle,
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range s.Pods("shop") {
		names = append(names, p.Meta.Name)
		if p.Meta.Name == "web-predicted" {
			if !s.Predicted(p.Meta) || p.Identity != (identity.Identity{Namespace: "shop", Name: "web", Kind: "Deployment"}) || p.Meta.Labels["app"] != "web" {
				t.Errorf("predicted pod %+v identity %v", p.Meta, p.Identity)
			}
		}
		if p.Meta.Name == "idle-predicted" && p.Identity != (identity.Identity{Namespace: "shop", Name: "alias"}) {
			t.Errorf("a predicted pod ignores its template's annotations: identity %v", p.Identity)
		}
	}
	if want := []string{"aliased-1", "api-1", "idle-predicted", "web-predicted"}; !slices.Equal(names, want) {
		t.Errorf("pods %v, want %v", names, want)
	}
}

// The facts the NetworkPolicy compiler asks for, on the same objects, answer as the
// informer cache does: only root workloads, pods by identity name or selector, intents
// by exact server, namespaces named by objects exist, deleted objects are absent.
func TestFacts(t *testing.T) {
	ctx := context.Background()
	now := metav1.Now()
	deleting := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone", DeletionTimestamp: &now, Finalizers: []string{"x"}}}
	ci := func(name string, deleted bool, targets ...v2beta1.Target) *v2beta1.ClientIntents {
		c := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: name}, Targets: targets}}
		if deleted {
			c.DeletionTimestamp, c.Finalizers = &now, []string{"x"}
		}
		return c
	}
	svcTarget := v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web"}}
	wlTarget := v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "web", Kind: "Deployment"}}
	s, err := New([]client.Object{
		deleting,
		deployment("shop", "web", map[string]string{"app": "web"}, nil),
		deployment("shop", "lookalike", map[string]string{"app": "web"}, nil),
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}},
		deployment("shop", "inner", map[string]string{"app": "inner"}, owned("example.com/v1", "Operator", "op")),
		pod("shop", "web-a", map[string]string{"app": "web"}, owned("apps/v1", "Deployment", "web"), nil),
		pod("shop", "lookalike-a", map[string]string{"app": "web"}, owned("apps/v1", "Deployment", "lookalike"), nil),
		pod("shop", "other", map[string]string{"app": "other"}, nil, map[string]string{identity.WorkloadNameAnnotation: "web"}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}},
		ci("a", false, svcTarget), ci("b", false, wlTarget), ci("c", true, svcTarget),
		&v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}, Spec: v2beta1.ProtectedServiceSpec{Name: "web"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]bool{"shop": true, "gone": false, "absent": false} {
		if got, _ := s.NamespaceReady(ctx, ns); got != want {
			t.Errorf("NamespaceReady(%s) = %v, want %v", ns, got, want)
		}
	}
	ws, _ := s.Workloads(ctx, "shop", "web")
	var kinds []string
	for _, w := range ws {
		kinds = append(kinds, w.Kind)
		if (w.Selector != nil) != (w.Kind == "Deployment") {
			t.Errorf("workload %s selector %v", w.Kind, w.Selector)
		}
	}
	if slices.Sort(kinds); !slices.Equal(kinds, []string{"Deployment", "Job"}) {
		t.Errorf("Workloads(web) kinds %v", kinds)
	}
	if ws, _ := s.Workloads(ctx, "shop", "inner"); len(ws) != 0 {
		t.Errorf("an owned Deployment is a root: %v", ws)
	}
	pods, _ := s.PodsOf(ctx, intent.Ref{Namespace: "shop", Name: "web"}, ws)
	if got := podNames(pods); !slices.Equal(got, []string{"lookalike-a", "other", "web-a"}) {
		t.Errorf("PodsOf(web) = %v", got)
	}
	pods, _ = s.PodsMatching(ctx, "shop", map[string]string{"app": "web"})
	if got := podNames(pods); !slices.Equal(got, []string{"lookalike-a", "web-a"}) {
		t.Errorf("PodsMatching(app=web) = %v", got)
	}
	for server, want := range map[intent.Server][]string{
		{Ref: intent.Ref{Namespace: "shop", Name: "web"}, Service: true}:       {"a"},
		{Ref: intent.Ref{Namespace: "shop", Name: "web", Kind: "Deployment"}}:  {"b"},
		{Ref: intent.Ref{Namespace: "shop", Name: "web"}}:                      nil,
		{Ref: intent.Ref{Namespace: "other", Name: "web", Kind: "Deployment"}}: nil,
	} {
		got, _ := s.IntentsTargeting(ctx, server)
		var names []string
		for _, c := range got {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("IntentsTargeting(%v) = %v, want %v", server, names, want)
		}
	}
	if svc, _ := s.Service(ctx, "shop", "web"); svc == nil {
		t.Error("Service(shop/web) is missing")
	}
	if svc, _ := s.Service(ctx, "shop", "nope"); svc != nil {
		t.Error("Service(shop/nope) found")
	}
	if ps, _ := s.ProtectedNamed(ctx, "shop", "web"); len(ps) != 1 {
		t.Errorf("ProtectedNamed(web) = %v", ps)
	}
}

func podNames(pods []facts.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Meta.Name)
	}
	slices.Sort(out)
	return out
}

// Pods keep the ports their containers declare, which named policy ports resolve
// against; a predicted pod has its template's.
func TestContainerPorts(t *testing.T) {
	web := deployment("shop", "web", map[string]string{"app": "web"}, nil)
	web.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
		{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
	}
	api := pod("shop", "api-1", map[string]string{"app": "api"}, nil, nil)
	api.Spec.Containers = []corev1.Container{{Name: "api", Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 50051}}}}
	s, err := New([]client.Object{web, api, pod("shop", "bare", nil, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]corev1.ContainerPort{}
	for _, p := range s.Pods("shop") {
		got[p.Meta.Name] = s.ContainerPorts(p.Meta)
	}
	want := map[string][]corev1.ContainerPort{
		"web-predicted": {{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
		"api-1":         {{Name: "grpc", ContainerPort: 50051}},
		"bare":          nil,
	}
	for name, ports := range want {
		if !slices.Equal(got[name], ports) {
			t.Errorf("pod %s: container ports %v, want %v", name, got[name], ports)
		}
	}
	if len(got) != len(want) {
		t.Errorf("pods %v, want those of %v", got, want)
	}
}

// TestWithProtected checks that the snapshot with a ProtectedService added answers for
// it, and leaves the snapshot it came from as it was.
func TestWithProtected(t *testing.T) {
	existing := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: v2beta1.ProtectedServiceSpec{Name: "web"}}
	s, err := New([]client.Object{existing})
	if err != nil {
		t.Fatal(err)
	}
	added := v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}, Spec: v2beta1.ProtectedServiceSpec{Name: "api", Kind: "Deployment"}}
	with := s.WithProtected(added)
	got, _ := with.ProtectedNamed(context.Background(), "shop", "api")
	if len(got) != 1 || got[0].Spec.Kind != "Deployment" || len(with.ProtectedServices()) != 2 || with.ProtectedServices()[0].Name != "api" {
		t.Errorf("with the ProtectedService added: %v", with.ProtectedServices())
	}
	if before, _ := s.ProtectedNamed(context.Background(), "shop", "api"); len(before) != 0 || len(s.ProtectedServices()) != 1 {
		t.Errorf("the original snapshot changed: %v", s.ProtectedServices())
	}
}
