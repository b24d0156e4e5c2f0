package status

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	"github.com/intentguard/intentguard/internal/point/networkpolicy"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Condition types and reasons reported on ClientIntents.
const (
	ConditionReady           = "Ready"
	ConditionTargetsResolved = "TargetsResolved"
	ConditionEnforced        = "Enforced"

	ReasonApplied       = "Applied"
	ReasonPending       = "Pending"
	ReasonFailed        = "Failed"
	ReasonResolved      = "Resolved"
	ReasonTargetMissing = "TargetMissing"
	ReasonEnforced      = "Enforced"
	ReasonShadowMode    = "ShadowMode"
	ReasonPartial       = "PartiallyEnforced"
	ReasonNotEnforced   = "NotEnforced"
)

// Enforcement summaries shown in the Enforcement printer column.
const (
	EnforcementEnforced = "Enforced"
	EnforcementShadow   = "Shadow"
	EnforcementPartial  = "Partial"
	EnforcementNone     = "None"
)

// ClientIntentsReconciler reports, on each ClientIntents, whether its targets exist, whether they
// are enforced, and whether their policies are in place; it emits an Event whenever one
// of those answers changes.
type ClientIntentsReconciler struct {
	Client  client.Client
	Planner compile.Planner
	// Points are the enforcement points whose reports make up the status; the first is
	// the NetworkPolicy point.
	Points   []enforcement.Point
	Recorder events.EventRecorder

	// progress, when set, tells a policy still being written from one that failed.
	progress *networkpolicy.Progress
	mu       sync.Mutex
	// memory holds what the reconciler remembers of each ClientIntents between reconciles.
	memory map[client.ObjectKey]*memory
}

// memory is what the status reconciler remembers of one ClientIntents. The work queue
// never reconciles one key twice at a time, so only the map needs the lock.
type memory struct {
	// pendingSince is when it was first seen waiting for a policy; zero when not waiting.
	pendingSince time.Time
	// deferredSince is when its status was first held back for the NetworkPolicy
	// controller's backlog; zero when not held back.
	deferredSince time.Time
	// written is the last status written, and the resourceVersion that write replaced,
	// so that a reconcile reading the cache before it has caught up with the write does
	// not write the same status again.
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

// since returns *t, set to now first if it is zero.
func since(t *time.Time) time.Time {
	if t.IsZero() {
		*t = time.Now()
	}
	return *t
}

const (
	// pendingStall is how long a policy the NetworkPolicy controller is still working on
	// may take to land before Ready reports Pending anyway.
	pendingStall = 10 * time.Second
	// pendingRecheck is how often a ClientIntents waiting for its policies looks for a
	// failed attempt; the policies' own watch events bring it back sooner.
	pendingRecheck = 5 * time.Second
	// backlogThreshold is the number of servers with changes in hand above which status
	// writes wait, so that in a burst (many intents applied at once, an operator start)
	// the API server spends its capacity on policies first.
	backlogThreshold = 16
	// backlogRecheck is how often status held back for the backlog looks again.
	backlogRecheck = 500 * time.Millisecond
	// backlogMaxDefer bounds how long status is held back for the backlog, so that
	// steady churn elsewhere cannot starve it.
	backlogMaxDefer = 10 * time.Second
)

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
	if wait := r.waitForPolicies(&ci); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	mem := r.recall(req.NamespacedName)
	if wait := r.waitForBacklog(mem); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var states []v2beta1.TargetStatus
	reported := map[string]bool{}
	var missing []string
	inHand := 0
	for _, point := range r.Points {
		var got []enforcement.TargetState
		var err error
		if pp, ok := point.(*networkpolicy.PolicyPoint); ok {
			var rep networkpolicy.Report
			rep, err = pp.FullReport(ctx, &ci)
			got, missing, inHand = rep.States, rep.Missing, rep.InHand
		} else {
			got, err = point.Report(ctx, &ci)
		}
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("%s report: %w", point.Name(), err)
		}
		for _, st := range got {
			reported[st.Target] = true
			states = append(states, v2beta1.TargetStatus{Target: st.Target, Point: point.Name(), State: string(st.State), Message: st.Message})
		}
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

	status := ci.Status.DeepCopy()
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
		set(ConditionTargetsResolved, true, ReasonResolved, "every target was found in the cluster")
	} else {
		set(ConditionTargetsResolved, false, ReasonTargetMissing, "not found: "+strings.Join(missing, ", "))
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
		set(ConditionEnforced, true, ReasonEnforced, "these intents declare no calls, so there is nothing to enforce")
	case nEnforced == len(enforcedTargets):
		status.Enforcement = EnforcementEnforced
		set(ConditionEnforced, true, ReasonEnforced, "every target accepts this client and no undeclared one")
	case nEnforced == 0 && len(by[enforcement.Shadow]) == len(states):
		status.Enforcement = EnforcementShadow
		set(ConditionEnforced, false, ReasonShadowMode, "shadow mode: nothing is enforced for these calls; "+strings.Join(by[enforcement.Shadow], "; "))
	default:
		status.Enforcement = EnforcementPartial
		if nEnforced == 0 {
			status.Enforcement = EnforcementNone
		}
		var not []string
		for _, st := range states {
			if st.State != string(enforcement.Enforced) {
				not = append(not, describe(st))
			}
		}
		reason := ReasonPartial
		if nEnforced == 0 {
			reason = ReasonNotEnforced
		}
		set(ConditionEnforced, false, reason, fmt.Sprintf("%d of %d targets enforced; not enforced: %s", nEnforced, len(enforcedTargets), strings.Join(not, "; ")))
	}
	switch {
	case len(by[enforcement.Failed]) > 0:
		status.UpToDate = false
		set(ConditionReady, false, ReasonFailed, strings.Join(append(by[enforcement.Failed], by[enforcement.Waiting]...), "; "))
	case len(by[enforcement.Waiting]) > 0:
		// While the NetworkPolicy controller still has the change in hand, reporting Pending
		// would cost a status write and an Event per ClientIntents in every burst; the
		// policy's watch event brings this back when it lands. A first status is written
		// at once, and a wait that lasts is reported.
		if inHand == len(by[enforcement.Waiting]) && meta.FindStatusCondition(ci.Status.Conditions, ConditionReady) != nil {
			if wait := pendingStall - time.Since(since(&mem.pendingSince)); wait > 0 {
				return ctrl.Result{RequeueAfter: min(wait, pendingRecheck)}, nil
			}
		}
		status.UpToDate = false
		set(ConditionReady, false, ReasonPending, strings.Join(by[enforcement.Waiting], "; "))
	default:
		mem.pendingSince = time.Time{}
		status.UpToDate = true
		set(ConditionReady, true, ReasonApplied, "every enforcement point reflects this generation")
	}
	if equality.Semantic.DeepEqual(status, &ci.Status) {
		return ctrl.Result{}, nil
	}
	if mem.written != nil && mem.writtenOver == ci.ResourceVersion && equality.Semantic.DeepEqual(status, mem.written) {
		return ctrl.Result{}, nil
	}
	r.announce(&ci, status)
	over := ci.ResourceVersion
	patch := client.MergeFrom(ci.DeepCopy())
	ci.Status = *status
	if err := r.Client.Status().Patch(ctx, &ci, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	mem.written, mem.writtenOver = status, over
	ready := meta.FindStatusCondition(status.Conditions, ConditionReady)
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

// waitForPolicies returns how long to wait before computing the status, when the
// NetworkPolicy controller still has changes to one of the servers in hand: the status
// would only say Pending, and computing it costs a plan per server. The controller tells
// this one when it is done; the returned wait is the fallback.
func (r *ClientIntentsReconciler) waitForPolicies(ci *v2beta1.ClientIntents) time.Duration {
	if r.progress == nil {
		return 0
	}
	for _, server := range intent.Servers(ci) {
		outstanding, since, blocked := r.progress.State(networkpolicy.ServerRequest(server))
		if outstanding && blocked == "" && time.Since(since) < pendingStall {
			return pendingRecheck
		}
	}
	return 0
}

// waitForBacklog holds status back while the NetworkPolicy controller has a backlog,
// for at most backlogMaxDefer per ClientIntents.
func (r *ClientIntentsReconciler) waitForBacklog(mem *memory) time.Duration {
	if r.progress == nil || r.progress.Backlog(pendingStall) < backlogThreshold {
		mem.deferredSince = time.Time{}
		return 0
	}
	if time.Since(since(&mem.deferredSince)) >= backlogMaxDefer {
		mem.deferredSince = time.Time{}
		return 0
	}
	return backlogRecheck
}

// announced are the reasons worth an Event when a condition takes them: what users need
// to know, not every step of normal operation.
var announced = map[string]string{
	ReasonApplied:       corev1.EventTypeNormal,
	ReasonPending:       corev1.EventTypeWarning,
	ReasonFailed:        corev1.EventTypeWarning,
	ReasonNotEnforced:   corev1.EventTypeNormal,
	ReasonTargetMissing: corev1.EventTypeWarning,
	ReasonShadowMode:    corev1.EventTypeNormal,
	ReasonPartial:       corev1.EventTypeNormal,
}

// announce emits an Event for each condition that newly took an announced reason.
func (r *ClientIntentsReconciler) announce(ci *v2beta1.ClientIntents, next *v2beta1.ClientIntentsStatus) {
	if r.Recorder == nil {
		return
	}
	for _, c := range next.Conditions {
		kind, ok := announced[c.Reason]
		prev := meta.FindStatusCondition(ci.Status.Conditions, c.Type)
		if !ok || (prev != nil && prev.Status == c.Status && prev.Reason == c.Reason) {
			continue
		}
		r.Recorder.Eventf(ci, nil, kind, c.Reason, c.Type, "%s", c.Message)
	}
}
