package istio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// FieldManager is the server-side-apply field manager of the policies, the same as the
// NetworkPolicy point's: one manager for everything the operator writes.
const FieldManager = "intentguard"

// takenRetry is how often a server whose policy name is held by another's looks again.
const takenRetry = time.Minute

// Reconciler keeps the AuthorizationPolicies of one server (the request's namespace and
// server key) equal to what the compiler makes of the intents that call it.
type Reconciler struct {
	Client client.Client
	// APIReader reads around the cache, which holds only the operator's policies.
	APIReader client.Reader
	// Rollout decides, as for the NetworkPolicy point, which servers are enforced.
	Rollout compile.Planner
	// Planner gathers what the Istio compiler needs.
	Planner authz.Planner

	point *Point
	// echoes learns the version of every policy written, so its watch event is ignored.
	echoes *burst.Echoes
}

// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;update;patch;delete

// Reconcile writes, updates or deletes one server's policies, and records how that ended.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.point.activity.Begin()
	defer r.point.activity.End()
	server, err := intent.ParseKey(req.Namespace, req.Name)
	if err != nil {
		log.FromContext(ctx).Error(err, "dropping malformed request")
		return ctrl.Result{}, nil
	}
	plan, err := r.Rollout.Plan(ctx, server)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("planning %s: %w", server, err)
	}
	rec, desired, err := r.desire(ctx, server, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	written, err := r.converge(ctx, server, desired)
	var taken nameTakenError
	switch {
	case errors.As(err, &taken):
		rec.fail(enforcement.TargetState{State: enforcement.Failed, Message: taken.Error()})
		r.point.record(server, rec, true)
		// Nothing the operator does frees the name, and the cache (so the watch) holds
		// only the operator's policies: look again, around the cache, a while later.
		return ctrl.Result{RequeueAfter: takenRetry}, nil
	case err != nil:
		rec.fail(enforcement.TargetState{State: enforcement.Waiting, Message: fmt.Sprintf("writing the AuthorizationPolicies of %s: %v; retrying", server, err)})
		r.point.record(server, rec, false)
		return ctrl.Result{}, err
	}
	if rec != nil && len(written) > 0 {
		rec.enforcedBy(written)
	}
	r.point.record(server, rec, false)
	return ctrl.Result{}, nil
}

// desire returns the record of the server's outcome if its policies are written as
// desired, and those policies; a nil record means nothing refers to the server.
func (r *Reconciler) desire(ctx context.Context, server intent.Server, plan compile.Plan) (*record, []*securityv1.AuthorizationPolicy, error) {
	if len(plan.Intents) == 0 && len(plan.Protectors) == 0 {
		return nil, nil, nil
	}
	rec := &record{intents: map[types.NamespacedName]int64{}, clients: map[types.NamespacedName]enforcement.TargetState{}, protectors: map[types.NamespacedName]int64{}}
	for i := range plan.Protectors {
		rec.protectors[client.ObjectKeyFromObject(&plan.Protectors[i])] = plan.Protectors[i].Generation
	}
	all := func(st enforcement.TargetState) (*record, []*securityv1.AuthorizationPolicy, error) {
		for i := range plan.Intents {
			k := client.ObjectKeyFromObject(&plan.Intents[i])
			rec.intents[k], rec.clients[k] = plan.Intents[i].Generation, st
		}
		rec.forProtected = st
		return rec, nil, nil
	}
	switch {
	case plan.KindMeant != "":
		return all(enforcement.TargetState{State: enforcement.Failed, Message: compile.KindMisspelled(server, plan.KindMeant)})
	case plan.NamespaceMissing:
		return all(enforcement.TargetState{State: enforcement.Waiting, Missing: true,
			Message: fmt.Sprintf("waiting for namespace %s: it does not exist yet", server.Namespace)})
	case !plan.Enforced:
		return all(enforcement.TargetState{State: enforcement.Shadow,
			Message: fmt.Sprintf("shadow mode: no AuthorizationPolicy; a ProtectedService for %s, or enforcing namespace %s, would enforce it", server, server.Namespace)})
	}
	in, err := r.Planner.Gather(ctx, server)
	if err != nil {
		return nil, nil, fmt.Errorf("gathering the mesh facts of %s: %w", server, err)
	}
	if in.TrustDomain == "" {
		return all(enforcement.TargetState{State: enforcement.Waiting,
			Message: "the mesh's trust domain is unknown: istiod's mesh configuration was not found and none is configured (--istio-trust-domain)"})
	}
	res, err := authz.Compile(in)
	if err != nil {
		return all(enforcement.TargetState{State: enforcement.Failed, Message: err.Error()})
	}
	for i := range plan.Intents {
		ci := &plan.Intents[i]
		k := client.ObjectKeyFromObject(ci)
		out, ok := res.Outcomes[intent.Client(ci)]
		if !ok {
			out = authz.Outcome{State: enforcement.Waiting, Message: "no outcome was computed for this client"}
		}
		rec.intents[k], rec.clients[k] = ci.Generation, enforcement.TargetState{State: out.State, Message: out.Message}
	}
	rec.forProtected = enforcement.TargetState{State: enforcement.Enforced}
	if len(res.Policies) == 0 {
		rec.forProtected = enforcement.TargetState{State: enforcement.NotEnforced, Message: fmt.Sprintf("no AuthorizationPolicy can protect %s: its pods are not in the mesh or cannot be selected", server)}
	}
	return rec, res.Policies, nil
}

// fail gives every target of the record the state st: the policies were not written.
func (rec *record) fail(st enforcement.TargetState) {
	if rec == nil {
		return
	}
	for k := range rec.clients {
		rec.clients[k] = st
	}
	rec.forProtected = st
}

// enforcedBy names the written policies in the record's messages and objects.
func (rec *record) enforcedBy(written []string) {
	names := strings.Join(written, ", ")
	for k, st := range rec.clients {
		st.Object = names
		if st.State == enforcement.Enforced {
			msg := fmt.Sprintf("AuthorizationPolicy %s admits this client's declared calls and no undeclared client", names)
			if st.Message != "" {
				msg += "; " + st.Message
			}
			st.Message = msg
		}
		rec.clients[k] = st
	}
	if rec.forProtected.State == enforcement.Enforced {
		rec.forProtected.Object = names
		rec.forProtected.Message = fmt.Sprintf("AuthorizationPolicy %s admits only the declared clients", names)
	}
}

// converge makes the cluster hold exactly the desired policies of the server, and deletes
// the server's own policies that are not desired. It returns the desired policies' names.
// A policy under one of the server's names that is not the server's own is never written
// or deleted: that is a nameTakenError.
func (r *Reconciler) converge(ctx context.Context, server intent.Server, desired []*securityv1.AuthorizationPolicy) ([]string, error) {
	var names []string
	for _, p := range desired {
		if err := r.convergeOne(ctx, server, p); err != nil {
			return nil, err
		}
		names = append(names, p.Namespace+"/"+p.Name)
	}
	var list securityv1.AuthorizationPolicyList
	if err := r.Client.List(ctx, &list, client.InNamespace(server.Namespace), client.MatchingLabels{authz.ServerLabel: server.Hash()}); err != nil {
		return nil, fmt.Errorf("listing the AuthorizationPolicies of %s: %w", server, err)
	}
	for _, p := range list.Items {
		if !authz.Owned(p, server) || slices.ContainsFunc(desired, func(d *securityv1.AuthorizationPolicy) bool { return d.Name == p.Name }) {
			continue
		}
		log.FromContext(ctx).Info("deleting AuthorizationPolicy", "policy", client.ObjectKeyFromObject(p), "server", server.String())
		if err := r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID, ResourceVersion: &p.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("deleting AuthorizationPolicy %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return names, nil
}

func (r *Reconciler) convergeOne(ctx context.Context, server intent.Server, desired *securityv1.AuthorizationPolicy) error {
	key := client.ObjectKeyFromObject(desired)
	var existing securityv1.AuthorizationPolicy
	err := r.Client.Get(ctx, key, &existing)
	switch {
	case apierrors.IsNotFound(err):
		return r.create(ctx, server, desired)
	case err != nil:
		return fmt.Errorf("reading AuthorizationPolicy %s: %w", key, err)
	case !authz.Owned(&existing, server):
		return nameTakenError{key: key, recorded: existing.Annotations[authz.ServerAnnotation]}
	case authz.UpToDate(desired, &existing):
		return nil
	}
	return r.apply(ctx, desired)
}

// create writes a policy the cache does not hold. Create fails when any object of that
// name exists, so a policy someone else wrote under the name (the cache holds only
// policies labelled as the operator's) is never taken over.
func (r *Reconciler) create(ctx context.Context, server intent.Server, desired *securityv1.AuthorizationPolicy) error {
	key := client.ObjectKeyFromObject(desired)
	var live securityv1.AuthorizationPolicy
	if r.point.lookFirst(server) {
		err := r.APIReader.Get(ctx, key, &live)
		switch {
		case err == nil:
			return r.adopt(ctx, server, desired, &live)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("reading AuthorizationPolicy %s: %w", key, err)
		}
	}
	created := desired.DeepCopy()
	err := r.Client.Create(ctx, created, client.FieldOwner(FieldManager))
	if err == nil {
		r.echoes.Wrote(created)
		log.FromContext(ctx).Info("created AuthorizationPolicy", "policy", key, "server", server.String())
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating AuthorizationPolicy %s: %w", key, err)
	}
	if err := r.APIReader.Get(ctx, key, &live); err != nil {
		return fmt.Errorf("reading AuthorizationPolicy %s: %w", key, err)
	}
	return r.adopt(ctx, server, desired, &live)
}

// adopt applies the desired policy over a live one of its name that the cache does not
// hold, if it is the server's own.
func (r *Reconciler) adopt(ctx context.Context, server intent.Server, desired, live *securityv1.AuthorizationPolicy) error {
	if !authz.Owned(live, server) {
		return nameTakenError{key: client.ObjectKeyFromObject(live), recorded: live.Annotations[authz.ServerAnnotation]}
	}
	if authz.UpToDate(desired, live) {
		return nil
	}
	return r.apply(ctx, desired)
}

// apply writes the desired policy with server-side apply. Rules someone else added stay
// after an apply (they are their manager's), so a policy that still differs is replaced.
func (r *Reconciler) apply(ctx context.Context, desired *securityv1.AuthorizationPolicy) error {
	key := client.ObjectKeyFromObject(desired)
	raw, err := json.Marshal(desired)
	if err != nil {
		return fmt.Errorf("encoding AuthorizationPolicy %s: %w", key, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("encoding AuthorizationPolicy %s: %w", key, err)
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying AuthorizationPolicy %s: %w", key, err)
	}
	log.FromContext(ctx).Info("applied AuthorizationPolicy", "policy", key)
	var applied securityv1.AuthorizationPolicy
	if raw, err = u.MarshalJSON(); err == nil {
		err = json.Unmarshal(raw, &applied)
	}
	if err != nil {
		return fmt.Errorf("decoding applied AuthorizationPolicy %s: %w", key, err)
	}
	if authz.UpToDate(desired, &applied) {
		r.echoes.Wrote(&applied)
		return nil
	}
	desired.Spec.DeepCopyInto(&applied.Spec)
	if err := r.Client.Update(ctx, &applied, client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("replacing edited AuthorizationPolicy %s: %w", key, err)
	}
	r.echoes.Wrote(&applied)
	log.FromContext(ctx).Info("replaced hand-edited AuthorizationPolicy", "policy", key)
	return nil
}

// nameTakenError says one of a server's policy names is held by an AuthorizationPolicy
// that is not that server's own, which the operator leaves alone.
type nameTakenError struct {
	key client.ObjectKey
	// recorded is the server key the policy records, if any.
	recorded string
}

func (e nameTakenError) Error() string {
	if e.recorded != "" {
		return fmt.Sprintf("AuthorizationPolicy %s exists and records another server (%q); leaving it alone", e.key, e.recorded)
	}
	return fmt.Sprintf("AuthorizationPolicy %s exists and was not written by %s for this server; leaving it alone", e.key, FieldManager)
}
