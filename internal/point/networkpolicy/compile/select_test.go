package compile

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// shop is the namespace of the pod selection stories.
const shop = "shop"

// ref names a workload of the shop namespace; kind may be empty.
func ref(name, kind string) intent.Ref { return intent.Ref{Namespace: shop, Name: name, Kind: kind} }

// workload is a workload of the shop namespace with its pod selector.
func workload(kind, name string, selector *metav1.LabelSelector) Workload {
	return Workload{Kind: kind, Name: name, Selector: selector}
}

// podOwnedBy is a pod of the shop namespace whose root owner is kind/name.
func podOwnedBy(kind, name string, kv ...string) Pod {
	return Pod{Labels: matchLabels(kv...).MatchLabels, Identity: identity.Identity{Namespace: shop, Name: name, Kind: kind}}
}

// podNamedByAnnotation is a pod of the shop namespace whose identity comes from the
// workload-name annotation (so it has no kind).
func podNamedByAnnotation(name string, kv ...string) Pod {
	return Pod{Labels: matchLabels(kv...).MatchLabels, Identity: identity.Identity{Namespace: shop, Name: name}}
}

func TestSelectPods(t *testing.T) {
	web := matchLabels("app", "web")
	tests := []struct {
		name      string
		ref       intent.Ref
		workloads []Workload
		pods      []Pod
		// wantSelector is the workload selector expected; nil means selection by label.
		wantSelector *metav1.LabelSelector
	}{
		{
			name:      "a Deployment whose selector matches exactly its pods is selected by that selector",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", web), workload("Deployment", "api", matchLabels("app", "api"))},
			pods: []Pod{
				podOwnedBy("Deployment", "web", "app", "web", "pod-template-hash", "abc"),
				podOwnedBy("Deployment", "web", "app", "web", "pod-template-hash", "def"),
				podOwnedBy("Deployment", "api", "app", "api"),
			},
			wantSelector: web,
		},
		{
			name:         "a Deployment without pods yet is selected by its selector, so new pods are covered at once",
			ref:          ref("web", "Deployment"),
			workloads:    []Workload{workload("Deployment", "web", web)},
			wantSelector: web,
		},
		{
			name:         "a StatefulSet is selected by its selector",
			ref:          ref("db", "StatefulSet"),
			workloads:    []Workload{workload("StatefulSet", "db", matchLabels("app", "db"))},
			pods:         []Pod{podOwnedBy("StatefulSet", "db", "app", "db")},
			wantSelector: matchLabels("app", "db"),
		},
		{
			name:         "a DaemonSet is selected by its selector",
			ref:          ref("agent", ""),
			workloads:    []Workload{workload("DaemonSet", "agent", matchLabels("app", "agent"))},
			pods:         []Pod{podOwnedBy("DaemonSet", "agent", "app", "agent")},
			wantSelector: matchLabels("app", "agent"),
		},
		{
			name:      "a bare pod sharing the Deployment's app label forces selection by label",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", web)},
			pods: []Pod{
				podOwnedBy("Deployment", "web", "app", "web"),
				podOwnedBy("Pod", "debug-shell", "app", "web"),
			},
		},
		{
			name:      "a Job pod sharing the Deployment's app label forces selection by label",
			ref:       ref("web", "Deployment"),
			workloads: []Workload{workload("Deployment", "web", web), workload("Job", "migrate", matchLabels("batch.kubernetes.io/controller-uid", "1234"))},
			pods: []Pod{
				podOwnedBy("Deployment", "web", "app", "web"),
				podOwnedBy("Job", "migrate", "app", "web", "batch.kubernetes.io/controller-uid", "1234"),
			},
		},
		{
			name:      "a pod of another Deployment with a superset of the labels forces selection by label",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", web), workload("Deployment", "web-canary", matchLabels("app", "web", "track", "canary"))},
			pods: []Pod{
				podOwnedBy("Deployment", "web", "app", "web"),
				podOwnedBy("Deployment", "web-canary", "app", "web", "track", "canary"),
			},
		},
		{
			name:      "a pod of the identity the selector misses forces selection by label",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", web)},
			pods: []Pod{
				podOwnedBy("Deployment", "web", "app", "web"),
				podNamedByAnnotation("web", "app", "legacy-web"),
			},
		},
		{
			name:      "two workloads of different kinds with the ref's name and no kind in the ref: selection by label",
			ref:       ref("db", ""),
			workloads: []Workload{workload("Deployment", "db", matchLabels("app", "db-admin")), workload("StatefulSet", "db", matchLabels("app", "db"))},
			pods: []Pod{
				podOwnedBy("Deployment", "db", "app", "db-admin"),
				podOwnedBy("StatefulSet", "db", "app", "db"),
			},
		},
		{
			name:      "the ref's kind picks the StatefulSet among same-named workloads",
			ref:       ref("db", "StatefulSet"),
			workloads: []Workload{workload("Deployment", "db", matchLabels("app", "db-admin")), workload("StatefulSet", "db", matchLabels("app", "db"))},
			pods: []Pod{
				podOwnedBy("Deployment", "db", "app", "db-admin"),
				podOwnedBy("StatefulSet", "db", "app", "db"),
			},
			wantSelector: matchLabels("app", "db"),
		},
		{
			name:      "the ref's kind picks the Deployment among same-named workloads",
			ref:       ref("db", "Deployment"),
			workloads: []Workload{workload("Deployment", "db", matchLabels("app", "db-admin")), workload("StatefulSet", "db", matchLabels("app", "db"))},
			pods: []Pod{
				podOwnedBy("Deployment", "db", "app", "db-admin"),
				podOwnedBy("StatefulSet", "db", "app", "db"),
			},
			wantSelector: matchLabels("app", "db-admin"),
		},
		{
			name:      "the kind picks a workload, but its selector also matches the other kind's pods",
			ref:       ref("db", "StatefulSet"),
			workloads: []Workload{workload("Deployment", "db", matchLabels("app", "db", "role", "admin")), workload("StatefulSet", "db", matchLabels("app", "db"))},
			pods: []Pod{
				podOwnedBy("Deployment", "db", "app", "db", "role", "admin"),
				podOwnedBy("StatefulSet", "db", "app", "db"),
			},
		},
		{
			name: "an identity named by annotation has no workload: selection by label",
			ref:  ref("frontend", ""),
			pods: []Pod{
				podNamedByAnnotation("frontend", "app", "web"),
			},
			workloads: []Workload{workload("Deployment", "web", web)},
		},
		{
			name:      "a Deployment whose pods are renamed by annotation no longer stands for its own name",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", web)},
			pods:      []Pod{podNamedByAnnotation("frontend", "app", "web")},
		},
		{
			name:      "a kinded ref never matches pods whose identity (from an annotation) has no kind",
			ref:       ref("web", "Deployment"),
			workloads: []Workload{workload("Deployment", "web", web)},
			pods:      []Pod{podNamedByAnnotation("web", "app", "web")},
		},
		{
			name:      "a Job is selected by label, even with an exact selector",
			ref:       ref("migrate", ""),
			workloads: []Workload{workload("Job", "migrate", matchLabels("batch.kubernetes.io/controller-uid", "1234"))},
			pods:      []Pod{podOwnedBy("Job", "migrate", "batch.kubernetes.io/controller-uid", "1234")},
		},
		{
			name:      "a CronJob is selected by label",
			ref:       ref("report", "CronJob"),
			workloads: []Workload{workload("CronJob", "report", nil)},
			pods:      []Pod{podOwnedBy("CronJob", "report", "app", "report")},
		},
		{
			name:      "a ReplicaSet without a Deployment is selected by label",
			ref:       ref("legacy", ""),
			workloads: []Workload{workload("ReplicaSet", "legacy", matchLabels("app", "legacy"))},
			pods:      []Pod{podOwnedBy("ReplicaSet", "legacy", "app", "legacy")},
		},
		{
			name: "no workload at all (bare pods): selection by label",
			ref:  ref("debug-shell", "Pod"),
			pods: []Pod{podOwnedBy("Pod", "debug-shell", "app", "web")},
		},
		{
			name:      "a workload with an empty selector is never used",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", &metav1.LabelSelector{})},
		},
		{
			name:      "a workload with a nil selector is never used",
			ref:       ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", nil)},
		},
		{
			name: "a workload with an invalid selector is never used",
			ref:  ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: "Near", Values: []string{"web"}},
			}})},
			pods: []Pod{podOwnedBy("Deployment", "web", "app", "web")},
		},
		{
			name: "a selector with match expressions that matches exactly is used",
			ref:  ref("web", ""),
			workloads: []Workload{workload("Deployment", "web", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "www"}},
			}})},
			pods: []Pod{podOwnedBy("Deployment", "web", "app", "www"), podOwnedBy("Pod", "debug", "app", "webby")},
			wantSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "www"}},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SelectPods(tc.ref, tc.workloads, tc.pods)
			if isEmpty(got.Selector) {
				t.Fatalf("SelectPods returned an empty selector %v: it would select the whole namespace", got.Selector)
			}
			if tc.wantSelector == nil {
				if !got.ByLabel {
					t.Errorf("ByLabel = false with selector %s, want selection by label", toJSON(t, got.Selector))
				}
				if want := PodLabels(tc.ref); !reflect.DeepEqual(got.Selector, &metav1.LabelSelector{MatchLabels: want}) {
					t.Errorf("selector = %s, want the operator's labels %v", toJSON(t, got.Selector), want)
				}
				return
			}
			if got.ByLabel {
				t.Errorf("ByLabel = true, want the workload's selector %s", toJSON(t, tc.wantSelector))
			}
			if !reflect.DeepEqual(got.Selector, tc.wantSelector) {
				t.Errorf("selector = %s, want %s", toJSON(t, got.Selector), toJSON(t, tc.wantSelector))
			}
		})
	}
}

func TestSelectPodsReturnsACopyOfTheWorkloadSelector(t *testing.T) {
	workloads := []Workload{workload("Deployment", "web", matchLabels("app", "web"))}
	got := SelectPods(ref("web", ""), workloads, []Pod{podOwnedBy("Deployment", "web", "app", "web")})
	if got.ByLabel {
		t.Fatal("want the workload's selector")
	}
	got.Selector.MatchLabels["app"] = "changed"
	if workloads[0].Selector.MatchLabels["app"] != "web" {
		t.Error("changing the selection changed the workload's selector")
	}
}

func TestPodLabels(t *testing.T) {
	if got, want := PodLabels(ref("web", "")), map[string]string{WorkloadLabel: "web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PodLabels(unkinded) = %v, want %v", got, want)
	}
	if got, want := PodLabels(ref("web", "Deployment")), map[string]string{WorkloadLabel: "web", WorkloadKindLabel: "Deployment"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PodLabels(kinded) = %v, want %v", got, want)
	}
	// A pod carries IdentityLabels; a selection by label of any ref naming its identity
	// must select it, and a ref naming another kind must not.
	pod := identity.Identity{Namespace: shop, Name: "web", Kind: "Deployment"}
	carried := IdentityLabels(pod)
	for _, r := range []intent.Ref{ref("web", ""), ref("web", "Deployment")} {
		if !selects(t, ByLabel(r).Selector, carried) {
			t.Errorf("ByLabel(%v) does not select a pod of %v carrying %v", r, pod, carried)
		}
	}
	for _, r := range []intent.Ref{ref("web", "StatefulSet"), ref("api", ""), ref("web-1", "")} {
		if selects(t, ByLabel(r).Selector, carried) {
			t.Errorf("ByLabel(%v) selects a pod of %v carrying %v", r, pod, carried)
		}
	}
	annotated := IdentityLabels(identity.Identity{Namespace: shop, Name: "web"})
	if !selects(t, ByLabel(ref("web", "")).Selector, annotated) || selects(t, ByLabel(ref("web", "Deployment")).Selector, annotated) {
		t.Errorf("an identity from an annotation (labels %v) must be selected by unkinded refs only", annotated)
	}
}

// selects reports whether the selector matches a pod with the given labels.
func selects(t *testing.T, s *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatalf("invalid selector %v: %v", s, err)
	}
	return sel.Matches(labels.Set(podLabels))
}

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 64)
	inputs := []string{
		"web", "a", "web-1", "Web_App.v2", strings.Repeat("a", 63), long, strings.Repeat("b", 253),
		"Web App", "-leading-dash", "trailing-dash-", "slash/name", "ünïcödé", "h.0123", "..", long + "x",
	}
	seen := map[string]string{}
	for _, in := range inputs {
		got := LabelValue(in)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q, not a valid label value: %v", in, got, errs)
		}
		if again := LabelValue(in); again != got {
			t.Errorf("LabelValue(%q) is not stable: %q then %q", in, got, again)
		}
		if len(validation.IsValidLabelValue(in)) == 0 && got != in {
			t.Errorf("LabelValue(%q) = %q, want a valid value unchanged", in, got)
		}
		if len(validation.IsValidLabelValue(in)) > 0 && !strings.HasPrefix(got, "h.") {
			t.Errorf("LabelValue(%q) = %q, want a digest", in, got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("LabelValue(%q) = LabelValue(%q) = %q", in, prev, got)
		}
		seen[got] = in
		if sel := ByLabel(intent.Ref{Namespace: shop, Name: in, Kind: "Deployment"}).Selector; !selects(t, sel, IdentityLabels(identity.Identity{Namespace: shop, Name: in, Kind: "Deployment"})) {
			t.Errorf("ByLabel of %q does not select the pods of its own identity", in)
		}
	}
	// The digest is pinned: pods labeled by one version of the operator must still be
	// selected after an upgrade.
	if got, want := LabelValue(long), "h.ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df"; got != want {
		t.Errorf("LabelValue(64 x a) = %q, want %q", got, want)
	}
}
