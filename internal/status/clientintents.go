package status

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
)

// Enforcement summaries shown in the Enforcement printer column.
const (
	EnforcementEnforced = "Enforced"
	EnforcementShadow   = "Shadow"
	EnforcementPartial  = "Partial"
	EnforcementNone     = "None"
)

// ClientIntentsReconciler reports, on each ClientIntents, what the enforcement points
// recorded for its targets: whether they exist, whether they are enforced, and whether
// every point reflects its generation; it emits an Event when one of those answers turns
// to something a user acts on, or back from it.
type ClientIntentsReconciler struct {
	Client client.Client
	// Points are the enforcement points whose records make up the status.
	Points   []enforcement.Point
	Recorder events.EventRecorder

	mu sync.Mutex
	// memory holds what the reconciler remembers of each ClientIntents between reconciles.
	memory map[client.ObjectKey]*memory
}

// memory is what the status reconciler remembers of one ClientIntents. The work queue
// never reconciles one key twice at a time, so only the map needs the lock.
type memory struct {
	// written is the last status written and writtenOver the resourceVersion that write
	// replaced, kept until the cache holds a later version (the write's own watch event
	// brings a reconcile that drops them): a reconcile over the version it replaced starts
	// from it, so that the conditions it set keep their transition times, and does not
	// write the same status again.
	written     *v2beta1.ClientIntentsStatus
	writtenOver string
}

// recall returns what is remembered of a ClientIntents, starting afresh if nothing is.
func (r *ClientIntentsReconciler) recall(key client.ObjectKey) *memory {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memory == nil {
		r.memory = map[client.ObjectKey]*memory{}
	}
	m := r.memory[key]
	if m == nil {
		m = &memory{}
		r.memory[key] = m
	}
	return m
}

func (r *ClientIntentsReconciler) forget(key client.ObjectKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.memory, key)
}

// +kubebuilder:rbac:groups=k8s.otterize.com,resources=clientintents/status;protectedservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile recomputes one ClientIntents' status and writes it if it changed.
func (r *ClientIntentsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ci v2beta1.ClientIntents
	err := r.Client.Get(ctx, req.NamespacedName, &ci)
	if err != nil || !ci.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var recorded []enforcement.TargetState
	var states []v2beta1.TargetStatus
	reported := map[string]bool{}
	var missing []string
	for _, point := range r.Points {
		got, err := point.Outcomes(ctx, &ci)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("reading the %s outcomes: %w", point.Name(), err)
		}
		recorded = append(recorded, got...)
		for _, st := range got {
			reported[st.Target] = true
			states = append(states, v2beta1.TargetStatus{Target: st.Target, Point: point.Name(), State: string(st.State), Message: st.Message})
			if st.Missing {
				missing = append(missing, st.Target)
			}
		}
	}
	if wait := settling(recorded); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	for _, t := range ci.Spec.Targets {
		name, msg := intent.TargetName(t), "no enforcement point handles this kind of target yet: calls to it are neither allowed nor blocked by this project"
		if t.IsUnsupported() {
			// A call kept from an older version or upstream (database, aws, ...).
			name, msg = t.DescribeUnsupported()
		}
		if !reported[name] {
			reported[name] = true
			states = append(states, v2beta1.TargetStatus{Target: name, State: string(enforcement.NotEnforced), Message: msg})
		}
	}

	mem := r.recall(req.NamespacedName)
	status := ci.Status.DeepCopy()
	stale := mem.written != nil && mem.writtenOver == ci.ResourceVersion
	if stale {
		// The cache still holds the version the last write replaced: start from what was
		// written, so that a condition that write set keeps its transition time and the
		// same status is not written twice.
		status = mem.written.DeepCopy()
	} else {
		mem.written, mem.writtenOver = nil, ""
	}
	status.ObservedGeneration = ci.Generation
	status.TargetCount = int32(len(ci.Spec.Targets))
	status.Targets = states
	gen := ci.Generation
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	if len(missing) == 0 {
		set(enforcement.ConditionTargetsResolved, true, enforcement.ReasonResolved, "every target was found in the cluster")
	} else {
		set(enforcement.ConditionTargetsResolved, false, enforcement.ReasonTargetMissing, "not found: "+strings.Join(missing, ", "))
	}
	by := map[enforcement.State][]string{}
	// A target is enforced when every point that handles it enforces it.
	enforcedTargets := map[string]bool{}
	for _, st := range states {
		by[enforcement.State(st.State)] = append(by[enforcement.State(st.State)], describe(st))
		prev, seen := enforcedTargets[st.Target]
		enforcedTargets[st.Target] = (prev || !seen) && st.State == string(enforcement.Enforced)
	}
	nEnforced := 0
	for _, ok := range enforcedTargets {
		if ok {
			nEnforced++
		}
	}
	switch {
	case len(states) == 0:
		status.Enforcement = EnforcementEnforced
		set(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced, "these intents declare no calls, so there is nothing to enforce")
	case nEnforced == len(enforcedTargets):
		status.Enforcement = EnforcementEnforced
		set(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced, "every target accepts this client and no undeclared one")
	case nEnforced == 0 && len(by[enforcement.Shadow]) == len(states):
		status.Enforcement = EnforcementShadow
		set(enforcement.ConditionEnforced, false, enforcement.ReasonShadow, "shadow mode: nothing is enforced for these calls; "+strings.Join(by[enforcement.Shadow], "; "))
	default:
		status.Enforcement = EnforcementPartial
		reason := enforcement.ReasonPartial
		if nEnforced == 0 {
			status.Enforcement, reason = EnforcementNone, enforcement.ReasonNotEnforced
		}
		var not []string
		for _, st := range states {
			if st.State != string(enforcement.Enforced) {
				not = append(not, describe(st))
			}
		}
		set(enforcement.ConditionEnforced, false, reason, fmt.Sprintf("%d of %d targets enforced; not enforced: %s", nEnforced, len(enforcedTargets), strings.Join(not, "; ")))
	}
	switch {
	case len(by[enforcement.Failed]) > 0:
		status.UpToDate = false
		enforcement.SetReadiness(&status.Conditions, enforcement.ReasonFailed, strings.Join(append(by[enforcement.Failed], by[enforcement.Waiting]...), "; "), gen)
	case len(by[enforcement.Waiting]) > 0:
		status.UpToDate = false
		enforcement.SetReadiness(&status.Conditions, enforcement.ReasonPending, strings.Join(by[enforcement.Waiting], "; "), gen)
	default:
		status.UpToDate = true
		enforcement.SetReadiness(&status.Conditions, enforcement.ReasonReconciled, "every enforcement point reflects this generation", gen)
	}
	if equality.Semantic.DeepEqual(status, &ci.Status) {
		return ctrl.Result{}, nil
	}
	if stale && equality.Semantic.DeepEqual(status, mem.written) {
		return ctrl.Result{}, nil
	}
	r.announce(&ci, status)
	over := ci.ResourceVersion
	// Kept apart: the patch's response is decoded into ci, over slices status shares.
	written := status.DeepCopy()
	patch := client.MergeFrom(ci.DeepCopy())
	ci.Status = *status
	if err := r.Client.Status().Patch(ctx, &ci, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	mem.written, mem.writtenOver = written, over
	ready := meta.FindStatusCondition(status.Conditions, enforcement.ConditionReady)
	log.FromContext(ctx).Info("updated ClientIntents status", "generation", ci.Generation, "ready", ready.Status, "reason", ready.Reason, "message", ready.Message)
	return ctrl.Result{}, nil
}

// describe renders one target's state for a condition message.
func describe(st v2beta1.TargetStatus) string {
	if st.Point == "" {
		return st.Target + ": " + st.Message
	}
	return st.Target + " (" + st.Point + "): " + st.Message
}

// announce emits an Event for each condition whose change deserves one (eventFor).
func (r *ClientIntentsReconciler) announce(ci *v2beta1.ClientIntents, next *v2beta1.ClientIntentsStatus) {
	if r.Recorder == nil {
		return
	}
	for _, c := range next.Conditions {
		if kind, ok := eventFor(meta.FindStatusCondition(ci.Status.Conditions, c.Type), c); ok {
			r.Recorder.Eventf(ci, nil, kind, c.Reason, c.Type, "%s", enforcement.EventNote(c.Message))
		}
	}
}
