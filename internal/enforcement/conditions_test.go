package enforcement

import (
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each reason sets Ready and the one kstatus condition that goes with it, and removes the
// other; going through every pair of reasons leaves no condition of an earlier one.
func TestSetReadinessFollowsKstatus(t *testing.T) {
	want := map[string]struct {
		ready       metav1.ConditionStatus
		reconciling bool
		stalled     bool
	}{
		ReasonReconciled: {metav1.ConditionTrue, false, false},
		ReasonPending:    {metav1.ConditionFalse, true, false},
		ReasonFailed:     {metav1.ConditionFalse, false, true},
	}
	for from := range want {
		for to, w := range want {
			var conds []metav1.Condition
			SetReadiness(&conds, from, "before", 1)
			changed := SetReadiness(&conds, to, "after", 2)
			if from != to && !changed {
				t.Errorf("%s -> %s: changed %v", from, to, changed)
			}
			ready := meta.FindStatusCondition(conds, ConditionReady)
			if ready == nil || ready.Status != w.ready || ready.Reason != to || ready.ObservedGeneration != 2 {
				t.Errorf("%s -> %s: Ready %+v", from, to, ready)
			}
			for _, c := range []struct {
				kind  string
				holds bool
			}{{ConditionReconciling, w.reconciling}, {ConditionStalled, w.stalled}} {
				got := meta.FindStatusCondition(conds, c.kind)
				if (got != nil) != c.holds || (got != nil && (got.Status != metav1.ConditionTrue || got.Reason != to || got.Message != "after")) {
					t.Errorf("%s -> %s: %s %+v, want present %v", from, to, c.kind, got, c.holds)
				}
			}
		}
	}
	var conds []metav1.Condition
	SetReadiness(&conds, ReasonPending, "same", 1)
	if SetReadiness(&conds, ReasonPending, "same", 1) {
		t.Error("setting the same readiness again reports a change")
	}
}

func TestEventNoteFitsTheAPIServersLimit(t *testing.T) {
	short := "NetworkPolicy ns/access-to.service.api admits this client"
	if got := EventNote(short); got != short {
		t.Errorf("a short message changed: %q", got)
	}
	for _, unit := range []string{"a", "é", "数", "🙂"} {
		for n := 1000; n < 1100; n++ {
			msg := strings.Repeat(unit, n)
			got := EventNote(msg)
			if len(got) > noteLimit || !utf8.ValidString(got) {
				t.Fatalf("%d×%q: note of %d bytes, valid UTF-8 %v", n, unit, len(got), utf8.ValidString(got))
			}
			if len(msg) > noteLimit && !strings.HasPrefix(msg, strings.TrimSuffix(got, " … (the object's status has the whole message)")) {
				t.Fatalf("%d×%q: the note is not the message's beginning", n, unit)
			}
		}
	}
}
