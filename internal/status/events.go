package status

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/enforcement"
)

// eventTypes are the Event types of the reasons a condition can take. The good reasons
// (Reconciled, Resolved, Enforced) are the state a user expects and no call to act:
// they are announced only when a condition comes back to them, so that the Warning the
// user saw is followed by its end. Everything else asks for attention, or says that
// calls are not enforced, and is announced whenever a condition takes it.
var eventTypes = map[string]string{
	enforcement.ReasonReconciled:    corev1.EventTypeNormal,
	enforcement.ReasonResolved:      corev1.EventTypeNormal,
	enforcement.ReasonEnforced:      corev1.EventTypeNormal,
	enforcement.ReasonPending:       corev1.EventTypeWarning,
	enforcement.ReasonFailed:        corev1.EventTypeWarning,
	enforcement.ReasonTargetMissing: corev1.EventTypeWarning,
	enforcement.ReasonNotEnforced:   corev1.EventTypeNormal,
	enforcement.ReasonShadow:        corev1.EventTypeNormal,
	enforcement.ReasonPartial:       corev1.EventTypeNormal,
}

// goodReasons are the reasons announced only on a return to them.
var goodReasons = map[string]bool{
	enforcement.ReasonReconciled: true,
	enforcement.ReasonResolved:   true,
	enforcement.ReasonEnforced:   true,
}

// eventFor returns the type of the Event a condition taking next deserves after prev
// (nil when the condition is new), and false when it deserves none: in a burst of new
// intents, every one of which becomes Ready, no Event is written at all.
func eventFor(prev *metav1.Condition, next metav1.Condition) (string, bool) {
	if next.Type == enforcement.ConditionReconciling || next.Type == enforcement.ConditionStalled {
		// They repeat Ready.
		return "", false
	}
	kind, ok := eventTypes[next.Reason]
	if !ok || (prev != nil && prev.Status == next.Status && prev.Reason == next.Reason) {
		return "", false
	}
	if goodReasons[next.Reason] && prev == nil {
		return "", false
	}
	return kind, true
}
