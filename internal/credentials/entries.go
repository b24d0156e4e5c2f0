package credentials

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/identity"
)

// entriesResync is how often registry entries are compared with the cluster even
// without a pod change, which also removes entries whose workloads went away while the
// operator was down.
const entriesResync = 10 * time.Minute

// EntryReconciler keeps a backend's registry (SPIRE entries) to exactly one entry per
// (workload identity, service account) among pods asking for credentials. It has a
// single request key: every trigger recomputes the whole desired set, which the work
// queue coalesces while a sync runs, and the registrar applies the difference in batches.
type EntryReconciler struct {
	Client    client.Client
	Registrar backend.Registrar
	Options   Options
	// Owners resolves identities by the rule the intents operator follows too.
	Owners *identity.Owners
}

// Reconcile computes the desired entries from the cache and syncs them.
func (r *EntryReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{IndexHasSecret: "true"}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods asking for credentials: %w", err)
	}
	workloads, err := r.Desired(ctx, pods.Items)
	if err != nil {
		return ctrl.Result{}, err
	}
	ch, err := r.Registrar.Sync(ctx, workloads)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("syncing registry entries: %w", err)
	}
	if ch != (backend.Changes{}) {
		log.FromContext(ctx).Info("synced registry entries", "workloads", len(workloads), "created", ch.Created, "updated", ch.Updated, "deleted", ch.Deleted)
	}
	return ctrl.Result{RequeueAfter: entriesResync}, nil
}

// Desired returns one registry workload per (identity, service account) of the pods.
// The selectors are the namespace and the service account: a pod label can be set by
// anyone who may create a pod, while the service account is what the workload's owners
// grant it, so a label alone must never select an identity.
func (r *EntryReconciler) Desired(ctx context.Context, pods []corev1.Pod) ([]backend.Workload, error) {
	type key struct {
		id identity.Identity
		sa string
	}
	newest := map[key]*corev1.Pod{}
	for i := range pods {
		p := &pods[i]
		if !p.DeletionTimestamp.IsZero() || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		id, err := identity.Resolve(ctx, p, r.Owners.Lookup)
		if err != nil {
			return nil, err
		}
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		k := key{identityKey(id), sa}
		if cur, ok := newest[k]; !ok || newer(p, cur) {
			newest[k] = p
		}
	}
	var out []backend.Workload
	for k, p := range newest {
		spec, err := ParseSpec(p.Annotations)
		if err != nil {
			continue // the Secret reconciler reports it on the pod
		}
		id, err := SPIFFEID(r.Options.SPIFFEIDFormat, r.Options.TrustDomain, k.id)
		if err != nil {
			continue
		}
		// Refused requests get no entry, as they get no Secret; the Secret reconciler
		// reports them on the pod.
		if r.Options.DNS.checkAll(p.Namespace, k.id, spec.DNSNames) != nil {
			continue
		}
		ttl, err := r.Options.ttl(spec)
		if err != nil {
			continue
		}
		out = append(out, backend.Workload{
			SPIFFEID:  id,
			Selectors: []string{"k8s:ns:" + k.id.Namespace, "k8s:sa:" + k.sa},
			DNSNames:  dnsNames(k.id, spec.DNSNames),
			TTL:       ttl,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].SPIFFEID.String() != out[j].SPIFFEID.String() {
			return out[i].SPIFFEID.String() < out[j].SPIFFEID.String()
		}
		return out[i].Selectors[1] < out[j].Selectors[1]
	})
	return out, nil
}
