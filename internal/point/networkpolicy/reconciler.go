package networkpolicy

import (
	"context"
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// FieldManager is the server-side-apply field manager of every object the operator writes.
const FieldManager = "intentguard"

// Reconciler keeps the NetworkPolicy of one server (the request's namespace and
// server key) equal to what the compiler makes of the intents that target it.
type Reconciler struct {
	// Client reads from the cache and writes to the API server.
	Client client.Client
	// APIReader reads around the cache, to look at policies the cache does not hold.
	APIReader client.Reader
	// Reader answers the compiler's questions from the informer cache.
	Reader informer.Reader
	// Planner is the pure compiler the reconciler carries out.
	Planner compile.Planner

	// point records how each reconcile ended, and learns which servers are in hand.
	point *Point
	// echoes learns the version of every policy written, so its watch event is ignored.
	echoes *burst.Echoes
	// held reports whether a burst holds the server back (burst.Coalescer.Holds); nil
	// when nothing does.
	held func(reconcile.Request) bool
}

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets;replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=k8s.otterize.com,resources=clientintents;protectedservices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile applies or removes one server's policy, and records how that ended.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	token := r.point.progress.begin()
	server, plan, err := r.reconcile(ctx, req)
	if plan != nil {
		r.point.record(server, *plan, err)
	}
	r.point.progress.finish(req, token, err)
	return ctrl.Result{}, err
}

// reconcile converges one server's policy. It returns the plan it carried out, nil when
// there is none (a malformed request, or planning failed), and how that ended.
func (r *Reconciler) reconcile(ctx context.Context, req ctrl.Request) (intent.Server, *compile.Plan, error) {
	logger := log.FromContext(ctx)
	server, err := intent.ParseKey(req.Namespace, req.Name)
	if err != nil {
		logger.Error(err, "dropping malformed request")
		return server, nil, nil
	}
	planner := r.Planner.ForOneReconcile()
	plan, err := planner.Plan(ctx, server)
	if err != nil {
		return server, nil, err
	}
	// Pods are labelled before a policy relies on the labels, so no declared client is
	// cut off in between; labels are removed by the pod label controller, once no live
	// policy relies on them.
	lab := labeler{client: r.Client, reader: r.Reader, planner: planner, live: r.APIReader}
	for _, ref := range plan.Involved {
		_, pods, err := planner.SelectPods(ctx, ref)
		if err != nil {
			return server, &plan, err
		}
		var mine []facts.Pod
		for _, p := range pods {
			if ref.Matches(p.Identity) || p.Meta.Labels[compile.WorkloadLabel] != "" {
				mine = append(mine, p)
			}
		}
		if err := lab.sync(ctx, mine); err != nil {
			return server, &plan, err
		}
	}
	if r.held != nil && r.held(req) {
		// Clients of the server arrived in a burst while its pods were labelled: the
		// burst's release queues it again, to be written once with them.
		logger.V(1).Info("leaving a server to the burst that holds it")
		return server, nil, nil
	}
	// A server whose last attempt failed is usually blocked by a policy of its name that is
	// not ours; looking first keeps its retries from being write attempts.
	lookFirst := r.point.progress.failed(req)
	return server, &plan, r.converge(ctx, server, plan.Policy, lookFirst)
}

// converge makes the cluster hold exactly the desired policy for the server, then removes
// the server's policies left under names earlier releases gave it. A policy under the
// server's name that is not the server's own is never written or deleted.
func (r *Reconciler) converge(ctx context.Context, server intent.Server, desired *networkingv1.NetworkPolicy, lookFirst bool) error {
	if err := r.convergeNamed(ctx, server, desired, lookFirst); err != nil {
		return err
	}
	return r.pruneRenamed(ctx, server)
}

func (r *Reconciler) convergeNamed(ctx context.Context, server intent.Server, desired *networkingv1.NetworkPolicy, lookFirst bool) error {
	logger := log.FromContext(ctx)
	key := client.ObjectKey{Namespace: server.Namespace, Name: compile.PolicyName(server)}
	var existing networkingv1.NetworkPolicy
	err := r.Client.Get(ctx, key, &existing)
	switch {
	case apierrors.IsNotFound(err):
		if desired == nil {
			return nil
		}
		return r.create(ctx, server, desired, lookFirst)
	case err != nil:
		return fmt.Errorf("reading NetworkPolicy %s: %w", key, err)
	case !ownedBy(&existing, server):
		if desired == nil {
			logger.Info("leaving alone a NetworkPolicy under the server's name that is not its own", "policy", key, "server", server.String(), "recorded", existing.Annotations[compile.ServerAnnotation])
			return nil
		}
		return takenBy(&existing)
	case desired == nil:
		logger.Info("deleting NetworkPolicy", "policy", key, "server", server.String())
		return r.delete(ctx, &existing)
	case upToDate(desired, &existing):
		return nil
	}
	return r.apply(ctx, desired)
}

// delete removes a policy of the operator as it was read: if it changed since (another
// server took it over, say), the delete fails and the next reconcile looks again.
func (r *Reconciler) delete(ctx context.Context, p *networkingv1.NetworkPolicy) error {
	err := r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID, ResourceVersion: &p.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// pruneRenamed deletes the server's own policies under other names than its current one:
// those earlier releases named otherwise. They are found by the server's digest label,
// and only those that record the server exactly are deleted.
func (r *Reconciler) pruneRenamed(ctx context.Context, server intent.Server) error {
	var list networkingv1.NetworkPolicyList
	err := r.Client.List(ctx, &list, client.MatchingFields{indexPolicyServer: server.Namespace + "/" + server.Hash()})
	if err != nil {
		return fmt.Errorf("listing the NetworkPolicies of %s: %w", server, err)
	}
	name := compile.PolicyName(server)
	for i := range list.Items {
		p := &list.Items[i]
		if p.Name == name || !ownedBy(p, server) {
			continue
		}
		log.FromContext(ctx).Info("deleting NetworkPolicy left under an earlier name", "policy", client.ObjectKeyFromObject(p), "server", server.String(), "name", name)
		if err := r.delete(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// create writes a policy the cache does not hold. Create, unlike apply, fails when any
// object of that name exists, so a policy someone else wrote under the name is never
// taken over, and the common case costs one request. The cache holds only policies
// labelled as ours: one of the same name without the label is either the server's own
// with the label edited away, which is applied again, or someone else's, which is left
// alone. The
// server records created fields under the same manager as an update; a later apply that
// drops one of them leaves it behind, which apply's own check then replaces.
func (r *Reconciler) create(ctx context.Context, server intent.Server, desired *networkingv1.NetworkPolicy, lookFirst bool) error {
	key := client.ObjectKeyFromObject(desired)
	var live networkingv1.NetworkPolicy
	if lookFirst {
		err := r.APIReader.Get(ctx, key, &live)
		if err == nil {
			return r.adopt(ctx, server, desired, &live)
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading NetworkPolicy %s: %w", key, err)
		}
	}
	created := desired.DeepCopy()
	err := r.Client.Create(ctx, created, client.FieldOwner(FieldManager))
	if err == nil {
		r.echoes.Wrote(created)
		log.FromContext(ctx).Info("created NetworkPolicy", "policy", key, "server", desired.Annotations[compile.ServerAnnotation])
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating NetworkPolicy %s: %w", key, err)
	}
	if err := r.APIReader.Get(ctx, key, &live); err != nil {
		return fmt.Errorf("reading NetworkPolicy %s: %w", key, err)
	}
	return r.adopt(ctx, server, desired, &live)
}

// adopt applies the desired policy over a live one of its name that the cache does not
// hold, if the operator wrote it for this very server.
func (r *Reconciler) adopt(ctx context.Context, server intent.Server, desired, live *networkingv1.NetworkPolicy) error {
	if !ownedBy(live, server) {
		return takenBy(live)
	}
	return r.apply(ctx, desired)
}

// apply writes the desired policy with server-side apply. Fields someone else added to
// the spec (an egress rule, say) survive an apply, so a policy that still differs after it
// is replaced whole.
func (r *Reconciler) apply(ctx context.Context, desired *networkingv1.NetworkPolicy) error {
	logger := log.FromContext(ctx)
	key := client.ObjectKeyFromObject(desired)
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return fmt.Errorf("encoding NetworkPolicy %s: %w", key, err)
	}
	u := &unstructured.Unstructured{Object: raw}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying NetworkPolicy %s: %w", key, err)
	}
	var applied networkingv1.NetworkPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &applied); err != nil {
		return fmt.Errorf("decoding applied NetworkPolicy %s: %w", key, err)
	}
	logger.Info("applied NetworkPolicy", "policy", key, "server", desired.Annotations[compile.ServerAnnotation])
	r.echoes.Wrote(&applied)
	if compile.UpToDate(desired, &applied) {
		return nil
	}
	applied.Spec = desired.Spec
	if err := r.Client.Update(ctx, &applied, client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("replacing edited NetworkPolicy %s: %w", key, err)
	}
	r.echoes.Wrote(&applied)
	logger.Info("replaced hand-edited NetworkPolicy", "policy", key)
	return nil
}

// nameTakenError says a server's policy name is held by a NetworkPolicy that is not that
// server's own, which the operator leaves alone.
type nameTakenError struct {
	key client.ObjectKey
	// managed is true when the operator wrote the policy (for the server it records).
	managed bool
	// recorded is the server key the policy records, if any.
	recorded string
}

// takenBy is the error for a policy under a server's name that the server does not own.
func takenBy(p *networkingv1.NetworkPolicy) nameTakenError {
	return nameTakenError{key: client.ObjectKeyFromObject(p), managed: managedByUs(p), recorded: p.Annotations[compile.ServerAnnotation]}
}

func (e nameTakenError) Error() string {
	if !e.managed {
		return fmt.Sprintf("NetworkPolicy %s exists and is not managed by %s; leaving it alone", e.key, FieldManager)
	}
	if owner, err := intent.ParseKey(e.key.Namespace, e.recorded); err == nil {
		return fmt.Sprintf("NetworkPolicy %s is the policy of another server, %s, not of this one; leaving it alone", e.key, owner)
	}
	return fmt.Sprintf("NetworkPolicy %s is marked as managed by %s but records no server (%s %q); leaving it alone", e.key, FieldManager, compile.ServerAnnotation, e.recorded)
}

// managedByUs reports whether the operator wrote the object: its label, or its field
// manager in the object's managed fields.
func managedByUs(obj client.Object) bool {
	if obj.GetLabels()[ownership.Label] == ownership.IntentsOperator {
		return true
	}
	return slices.ContainsFunc(obj.GetManagedFields(), func(m metav1.ManagedFieldsEntry) bool { return m.Manager == FieldManager })
}

// ownedBy reports whether a policy is the server's own: written by the operator, in the
// server's namespace, recording exactly the server's key (kind spelling included). One
// that lost its record by hand is the server's whose name it has, as no two servers share
// a name.
func ownedBy(p *networkingv1.NetworkPolicy, server intent.Server) bool {
	if !managedByUs(p) || p.Namespace != server.Namespace {
		return false
	}
	recorded, ok := p.Annotations[compile.ServerAnnotation]
	return recorded == server.Key() || (!ok && p.Name == compile.PolicyName(server))
}
