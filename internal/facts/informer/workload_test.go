package informer

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The cache keeps of each workload kind its metadata as slimOwner keeps it, its kind and
// its selector, the same after a second pass through the transform (a list streamed by
// watch passes it twice); a copy shares nothing with what the cache holds.
func TestSlimWorkloadKeepsMetadataAndSelector(t *testing.T) {
	yes := true
	meta := metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", ResourceVersion: "7", Generation: 3,
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "x"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "App", Name: "web", UID: "u0", Controller: &yes}}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "track", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"canary"}}}}
	tpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	for kind, obj := range map[string]runtime.Object{
		"Deployment":  &appsv1.Deployment{ObjectMeta: *meta.DeepCopy(), Spec: appsv1.DeploymentSpec{Selector: sel.DeepCopy(), Template: tpl}},
		"StatefulSet": &appsv1.StatefulSet{ObjectMeta: *meta.DeepCopy(), Spec: appsv1.StatefulSetSpec{Selector: sel.DeepCopy(), Template: tpl}},
		"DaemonSet":   &appsv1.DaemonSet{ObjectMeta: *meta.DeepCopy(), Spec: appsv1.DaemonSetSpec{Selector: sel.DeepCopy(), Template: tpl}},
	} {
		once, err := slimWorkload(obj)
		if err != nil {
			t.Fatal(err)
		}
		twice, err := slimWorkload(once)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := twice.(*CachedWorkload)
		if !ok || once != twice {
			t.Fatalf("%s: the second pass gave %T, not the first pass's object", kind, twice)
		}
		if gvk := w.GroupVersionKind(); gvk != appsv1.SchemeGroupVersion.WithKind(kind) {
			t.Errorf("%s cached as %v", kind, gvk)
		}
		if !equality.Semantic.DeepEqual(w.Selector, sel) || !equality.Semantic.DeepEqual(SelectorOf(w), SelectorOf(obj)) {
			t.Errorf("%s: selector %+v cached, want %+v", kind, w.Selector, sel)
		}
		if w.Name != "web" || w.Namespace != "ns" || w.ResourceVersion != "7" || w.Generation != 3 || len(w.Labels)+len(w.Annotations) != 0 {
			t.Errorf("%s: metadata cached as %+v", kind, w.ObjectMeta)
		}
		if refs := w.OwnerReferences; len(refs) != 1 || refs[0].Kind != "App" || refs[0].Name != "web" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%s: owner references cached as %+v", kind, refs)
		}
		cp := w.DeepCopyObject().(*CachedWorkload)
		cp.Selector.MatchLabels["app"] = "db"
		cp.OwnerReferences[0].Name = "other"
		if w.Selector.MatchLabels["app"] != "web" || w.OwnerReferences[0].Name != "web" {
			t.Errorf("%s: a copy shares its selector or owners with the cached object", kind)
		}
	}
	if SelectorOf(&corev1.Pod{}) != nil {
		t.Error("a pod has a workload selector")
	}
}
