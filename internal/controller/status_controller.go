package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
)

// Condition types and reasons reported on ClientIntents.
const (
	ConditionReady           = "Ready"
	ConditionTargetsResolved = "TargetsResolved"
	ConditionEnforced        = "Enforced"

	ReasonApplied       = "Applied"
	ReasonPending       = "Pending"
	ReasonResolved      = "Resolved"
	ReasonTargetMissing = "TargetMissing"
	ReasonEnforced      = "Enforced"
	ReasonShadowMode    = "ShadowMode"
	ReasonPartial       = "PartiallyEnforced"
)

// Enforcement summaries shown in the Enforcement printer column.
const (
	EnforcementEnforced = "Enforced"
	EnforcementShadow   = "Shadow"
	EnforcementPartial  = "Partial"
)

// StatusReconciler reports, on each ClientIntents, whether its targets exist, whether they
// are enforced, and whether their policies are in place; it emits an Event whenever one
// of those answers changes.
type StatusReconciler struct {
	Client   client.Client
	Planner  Planner
	Recorder events.EventRecorder

	// progress, when set, tells a policy still being written from one that failed.
	progress *progress
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
func (r *StatusReconciler) recall(key client.ObjectKey) *memory {
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

func (r *StatusReconciler) forget(key client.ObjectKey) {
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
	pendingStall = 30 * time.Second
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
func (r *StatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
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
	var missingWorkloads, missingServices, shadowed, enforced []string
	var pending []intent.Server
	planner := r.Planner.forOneReconcile()
	servers := intent.Servers(&ci)
	for _, server := range servers {
		plan, err := planner.Plan(ctx, server)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch {
		case plan.Exists:
		case server.Service:
			missingServices = append(missingServices, server.String())
		default:
			missingWorkloads = append(missingWorkloads, server.String())
		}
		if !plan.Enforced {
			shadowed = append(shadowed, server.String())
			continue
		}
		enforced = append(enforced, server.String())
		if plan.Policy == nil {
			continue
		}
		var live networkingv1.NetworkPolicy
		err = r.Client.Get(ctx, client.ObjectKeyFromObject(plan.Policy), &live)
		if apierrors.IsNotFound(err) || (err == nil && !netpol.UpToDate(plan.Policy, &live)) {
			pending = append(pending, server)
		} else if err != nil {
			return ctrl.Result{}, fmt.Errorf("reading NetworkPolicy %s: %w", client.ObjectKeyFromObject(plan.Policy), err)
		}
	}

	status := ci.Status.DeepCopy()
	status.ObservedGeneration = ci.Generation
	status.TargetCount = int32(len(ci.Spec.Targets))
	gen := ci.Generation
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	if msg := missingMessage(missingWorkloads, missingServices); msg == "" {
		set(ConditionTargetsResolved, true, ReasonResolved, "every target was found in the cluster")
	} else {
		set(ConditionTargetsResolved, false, ReasonTargetMissing, msg)
	}
	switch {
	case len(servers) == 0:
		status.Enforcement = EnforcementEnforced
		set(ConditionEnforced, true, ReasonEnforced, "no target is an in-cluster server, so there is nothing for NetworkPolicies to enforce (internet targets are not enforced yet)")
	case len(shadowed) == 0:
		status.Enforcement = EnforcementEnforced
		set(ConditionEnforced, true, ReasonEnforced, "every server these intents call accepts only declared clients")
	case len(enforced) == 0:
		status.Enforcement = EnforcementShadow
		set(ConditionEnforced, false, ReasonShadowMode, "shadow mode: nothing is enforced for these calls; enforcing would protect "+strings.Join(shadowed, ", ")+" (add a ProtectedService or enforce the namespace)")
	default:
		status.Enforcement = EnforcementPartial
		set(ConditionEnforced, false, ReasonPartial, "enforced for "+strings.Join(enforced, ", ")+"; shadow mode for "+strings.Join(shadowed, ", "))
	}
	if len(pending) == 0 {
		mem.pendingSince = time.Time{}
		status.UpToDate = true
		set(ConditionReady, true, ReasonApplied, "the enforcement points reflect this generation")
	} else {
		// While the NetworkPolicy controller still has the change in hand, reporting Pending
		// would cost a status write and an Event per ClientIntents in every burst; the
		// policy's watch event brings this back when it lands. A policy blocked by one the
		// operator does not own, or a wait that lasts, is reported.
		var failures []string
		for _, server := range pending {
			if blocked := r.blocked(server); blocked != "" {
				failures = append(failures, blocked)
			}
		}
		if wait := pendingStall - time.Since(since(&mem.pendingSince)); wait > 0 && len(failures) == 0 {
			return ctrl.Result{RequeueAfter: min(wait, pendingRecheck)}, nil
		}
		msg := "waiting for NetworkPolicies of: " + joinServers(pending)
		if len(failures) > 0 {
			msg += "; " + strings.Join(failures, "; ")
		}
		status.UpToDate = false
		set(ConditionReady, false, ReasonPending, msg)
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

// missingMessage says which targets were not found and what that means for each kind: a
// workload's policy selects its pods by label and is in place before they exist, while a
// Service's policy needs the Service's selector.
func missingMessage(workloads, services []string) string {
	var parts []string
	if len(workloads) > 0 {
		parts = append(parts, "no workload or pods found for "+strings.Join(workloads, ", ")+" (their policies are in place and apply to their pods as soon as they exist)")
	}
	if len(services) > 0 {
		parts = append(parts, "no Service with a pod selector found for "+strings.Join(services, ", ")+" (their policies are written once the Service exists)")
	}
	return strings.Join(parts, "; ")
}

// waitForPolicies returns how long to wait before computing the status, when the
// NetworkPolicy controller still has changes to one of the servers in hand: the status
// would only say Pending, and computing it costs a plan per server. The controller tells
// this one when it is done; the returned wait is the fallback.
func (r *StatusReconciler) waitForPolicies(ci *v2beta1.ClientIntents) time.Duration {
	if r.progress == nil {
		return 0
	}
	for _, server := range intent.Servers(ci) {
		outstanding, since, blocked := r.progress.state(serverRequest(server))
		if outstanding && blocked == "" && time.Since(since) < pendingStall {
			return pendingRecheck
		}
	}
	return 0
}

// waitForBacklog holds status back while the NetworkPolicy controller has a backlog,
// for at most backlogMaxDefer per ClientIntents.
func (r *StatusReconciler) waitForBacklog(mem *memory) time.Duration {
	if r.progress == nil || r.progress.backlog(pendingStall) < backlogThreshold {
		mem.deferredSince = time.Time{}
		return 0
	}
	if time.Since(since(&mem.deferredSince)) >= backlogMaxDefer {
		mem.deferredSince = time.Time{}
		return 0
	}
	return backlogRecheck
}

// joinServers names servers as messages do.
func joinServers(servers []intent.Server) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

// blocked says what keeps the server's policy from being written, if something does.
func (r *StatusReconciler) blocked(server intent.Server) string {
	if r.progress == nil {
		return ""
	}
	_, _, blocked := r.progress.state(serverRequest(server))
	return blocked
}

// announced are the reasons worth an Event when a condition takes them: what users need
// to know, not every step of normal operation.
var announced = map[string]string{
	ReasonApplied:       corev1.EventTypeNormal,
	ReasonPending:       corev1.EventTypeWarning,
	ReasonTargetMissing: corev1.EventTypeWarning,
	ReasonShadowMode:    corev1.EventTypeNormal,
	ReasonPartial:       corev1.EventTypeNormal,
}

// announce emits an Event for each condition that newly took an announced reason.
func (r *StatusReconciler) announce(ci *v2beta1.ClientIntents, next *v2beta1.ClientIntentsStatus) {
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
