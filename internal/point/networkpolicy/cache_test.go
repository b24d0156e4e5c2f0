package networkpolicy

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// compiled returns the policy of server api in ns with the given clients, selected by
// label (those the pod label reconciler follows) or by a workload selector.
func compiled(clients ...string) *networkingv1.NetworkPolicy {
	in := compile.Input{
		Server: intent.Server{Ref: intent.Ref{Namespace: "ns", Name: "api"}},
		Pods:   compile.ByLabel(intent.Ref{Namespace: "ns", Name: "api"}).Selector,
	}
	for i, c := range clients {
		ref := intent.Ref{Namespace: fmt.Sprintf("ns%d", i%2), Name: c}
		sel := compile.ByLabel(ref).Selector
		if i%3 == 2 {
			sel = &metav1.LabelSelector{MatchLabels: map[string]string{"app": c}}
		}
		in.Clients = append(in.Clients, compile.Client{Ref: ref, Pods: sel})
	}
	np := compile.Compile(in)
	np.ResourceVersion = "7"
	return np
}

// slim is a policy as the cache holds it.
func slim(t *testing.T, np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	t.Helper()
	out, err := slimPolicy(np.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	return out.(*networkingv1.NetworkPolicy)
}

// The cache keeps no spec of a policy, yet answers what the reconciler and the pod label
// reconciler ask of it as the whole policy does: whether it is the desired one, and which
// operator pod labels it selects by.
func TestSlimPolicyAnswersAsTheWholePolicy(t *testing.T) {
	clientSets := [][]string{nil, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c", "d", "e"}, {"x"}}
	for _, have := range clientSets {
		live := compiled(have...)
		cached := slim(t, live)
		if len(cached.Spec.Ingress) != 0 || cached.Spec.PodSelector.Size() != 0 {
			t.Errorf("clients %v: the cached policy keeps its spec: %+v", have, cached.Spec)
		}
		if got, want := policyLabelRefs(cached), policyLabelRefs(live); !slices.Equal(got, want) {
			t.Errorf("clients %v: label refs of the cached policy %v, of the live one %v", have, got, want)
		}
		for _, want := range clientSets {
			desired := compiled(want...)
			if got, whole := upToDate(desired, cached), compile.UpToDate(desired, live); got != whole {
				t.Errorf("have %v, want %v: up to date from the cache %v, from the whole policy %v", have, want, got, whole)
			}
		}
	}
}

// A hand edit of the spec is seen through the digest, and annotations of the digest's
// names on the live object are replaced, not trusted, even with the mark of a slimmed
// policy of another process.
func TestSlimPolicySeesEditsAndIgnoresForgedDigests(t *testing.T) {
	desired := compiled("a", "b")
	edited := desired.DeepCopy()
	edited.Spec.Ingress[0].From = edited.Spec.Ingress[0].From[:1]
	if upToDate(desired, slim(t, edited)) {
		t.Error("a policy with a client removed by hand counts as up to date")
	}
	forged := edited.DeepCopy()
	forged.Annotations[cachedSpecDigest] = compile.SpecDigest(&desired.Spec)
	forged.Annotations[cachedLabelRefs] = ""
	forged.Annotations[cachedBy] = rand.Text()
	cached := slim(t, forged)
	if upToDate(desired, cached) {
		t.Error("a forged digest annotation made an edited policy count as up to date")
	}
	if got, want := policyLabelRefs(cached), policyLabelRefs(edited); !slices.Equal(got, want) {
		t.Errorf("label refs %v from forged annotations, want %v", got, want)
	}
}

// The informer hands a streamed list to the transform twice: the second pass keeps what
// the first recorded of the spec it took out.
func TestSlimPolicyTwice(t *testing.T) {
	live := compiled("a", "b", "c")
	once := slim(t, live)
	twice := slim(t, once)
	if !upToDate(compiled("a", "b", "c"), twice) {
		t.Error("a policy slimmed twice is no longer up to date")
	}
	if got, want := policyLabelRefs(twice), policyLabelRefs(live); !slices.Equal(got, want) {
		t.Errorf("label refs after two passes %v, want %v", got, want)
	}
}
