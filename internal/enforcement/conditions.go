package enforcement

import (
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The condition vocabulary of every object whose status the operator writes
// (ClientIntents, ProtectedService, KafkaServerConfig). Ready, Reconciling and Stalled
// follow the kstatus convention: Ready is always present; Reconciling and Stalled are
// present, True, only while they hold.
const (
	// ConditionReady is True when every enforcement point reflects the object's
	// generation, whatever it enforces (see ConditionEnforced).
	ConditionReady = "Ready"
	// ConditionReconciling is True while a point is still bringing the cluster to the
	// object's generation, or waits for something that is on its way.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when a point cannot get there until something changes.
	ConditionStalled = "Stalled"
	// ConditionTargetsResolved says whether every target of a ClientIntents was found.
	ConditionTargetsResolved = "TargetsResolved"
	// ConditionEnforced says whether the calls a ClientIntents declares are enforced.
	ConditionEnforced = "Enforced"
)

// Condition reasons: one word for one situation, whichever condition or object carries it.
const (
	// ReasonReconciled: Ready is True.
	ReasonReconciled = "Reconciled"
	// ReasonPending: Ready is False and Reconciling True; the message says what is awaited.
	ReasonPending = "Pending"
	// ReasonFailed: Ready is False and Stalled True; the message says what to change.
	ReasonFailed = "Failed"
	// ReasonResolved: every target was found.
	ReasonResolved = "Resolved"
	// ReasonTargetMissing: some target was not found; the message names them.
	ReasonTargetMissing = "TargetMissing"
	// ReasonEnforced: every target is enforced (the Enforcement column says Enforced).
	ReasonEnforced = "Enforced"
	// ReasonShadow: every target is in shadow mode (Enforcement Shadow).
	ReasonShadow = "Shadow"
	// ReasonPartial: some targets are enforced, others not (Enforcement Partial).
	ReasonPartial = "Partial"
	// ReasonNotEnforced: no target is enforced (Enforcement None).
	ReasonNotEnforced = "NotEnforced"
)

// SetReadiness sets Ready, Reconciling and Stalled from one reason: ReasonReconciled
// makes Ready True; ReasonPending makes it False with Reconciling True; ReasonFailed
// makes it False with Stalled True. Reconciling and Stalled are removed when they do not
// hold. It reports whether the conditions changed.
func SetReadiness(conditions *[]metav1.Condition, reason, message string, generation int64) bool {
	ready := metav1.ConditionFalse
	if reason == ReasonReconciled {
		ready = metav1.ConditionTrue
	}
	changed := meta.SetStatusCondition(conditions, metav1.Condition{Type: ConditionReady, Status: ready, Reason: reason, Message: message, ObservedGeneration: generation})
	for _, c := range []struct {
		kind  string
		holds bool
	}{{ConditionReconciling, reason == ReasonPending}, {ConditionStalled, reason == ReasonFailed}} {
		if c.holds {
			changed = meta.SetStatusCondition(conditions, metav1.Condition{Type: c.kind, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: generation}) || changed
		} else {
			changed = meta.RemoveStatusCondition(conditions, c.kind) || changed
		}
	}
	return changed
}

// noteLimit is the longest note the API server accepts on an events.k8s.io/v1 Event.
const noteLimit = 1024

// EventNote shortens a status message to what an Event may carry: the API server refuses
// a longer note, and the Event would be lost. The status keeps the whole message.
func EventNote(msg string) string {
	if len(msg) <= noteLimit {
		return msg
	}
	const more = " … (the object's status has the whole message)"
	cut := noteLimit - len(more)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + more
}
