package status

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/enforcement"
)

// Events are for what a user acts on: a condition turning to a warning or to calls not
// enforced, and its return from there; never a new object that is simply fine, never the
// same state again.
func TestEventsOnlyForWhatAUserActsOn(t *testing.T) {
	cond := func(kind string, ok bool, reason string) *metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return &metav1.Condition{Type: kind, Status: s, Reason: reason}
	}
	ready := func(ok bool, reason string) *metav1.Condition { return cond(enforcement.ConditionReady, ok, reason) }
	for _, tc := range []struct {
		name string
		prev *metav1.Condition
		next *metav1.Condition
		want string // "" for no Event
	}{
		{"new and ready", nil, ready(true, enforcement.ReasonReconciled), ""},
		{"new, every target resolved", nil, cond(enforcement.ConditionTargetsResolved, true, enforcement.ReasonResolved), ""},
		{"new and enforced", nil, cond(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced), ""},
		{"ready again, same reason", ready(true, enforcement.ReasonReconciled), ready(true, enforcement.ReasonReconciled), ""},
		{"new and failed", nil, ready(false, enforcement.ReasonFailed), corev1.EventTypeWarning},
		{"ready, then failed", ready(true, enforcement.ReasonReconciled), ready(false, enforcement.ReasonFailed), corev1.EventTypeWarning},
		{"pending after a wait", nil, ready(false, enforcement.ReasonPending), corev1.EventTypeWarning},
		{"still failed", ready(false, enforcement.ReasonFailed), ready(false, enforcement.ReasonFailed), ""},
		{"failed, then ready", ready(false, enforcement.ReasonFailed), ready(true, enforcement.ReasonReconciled), corev1.EventTypeNormal},
		{"pending, then ready", ready(false, enforcement.ReasonPending), ready(true, enforcement.ReasonReconciled), corev1.EventTypeNormal},
		{"new, a target missing", nil, cond(enforcement.ConditionTargetsResolved, false, enforcement.ReasonTargetMissing), corev1.EventTypeWarning},
		{"missing target found", cond(enforcement.ConditionTargetsResolved, false, enforcement.ReasonTargetMissing), cond(enforcement.ConditionTargetsResolved, true, enforcement.ReasonResolved), corev1.EventTypeNormal},
		{"new in shadow mode", nil, cond(enforcement.ConditionEnforced, false, enforcement.ReasonShadow), corev1.EventTypeNormal},
		{"enforced, then partial", cond(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced), cond(enforcement.ConditionEnforced, false, enforcement.ReasonPartial), corev1.EventTypeNormal},
		{"shadow, then enforced", cond(enforcement.ConditionEnforced, false, enforcement.ReasonShadow), cond(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced), corev1.EventTypeNormal},
		{"reconciling repeats ready", nil, cond(enforcement.ConditionReconciling, true, enforcement.ReasonPending), ""},
		{"stalled repeats ready", nil, cond(enforcement.ConditionStalled, true, enforcement.ReasonFailed), ""},
	} {
		got, ok := eventFor(tc.prev, *tc.next)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s: Event %q (%v), want %q", tc.name, got, ok, tc.want)
		}
	}
}
