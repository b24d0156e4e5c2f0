// Package controller holds the reconcilers that apply compiled NetworkPolicies, keep the
// operator's pod labels in step, and report status on ClientIntents.
package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
	"github.com/intentguard/intentguard/internal/rollout"
)

// Options are the roll-out settings, shared by every enforcement point.
type Options = rollout.Options

// Planner computes, from the cache, what one server's policy should be.
type Planner struct {
	Cluster cluster.Reader
	Options Options

	// selections, when set, remembers pod selections for the span of one reconcile, which
	// asks for the same identities' selection several times.
	selections map[intent.Ref]selection
}

type selection struct {
	sel  netpol.Selection
	pods []cluster.Pod
}

// forOneReconcile returns a planner that computes each identity's selection once; it must
// not outlive the reconcile, as the cache moves on.
func (p Planner) forOneReconcile() Planner {
	p.selections = map[intent.Ref]selection{}
	return p
}

// selectPods returns how the pods of ref are selected, and those pods.
func (p Planner) selectPods(ctx context.Context, ref intent.Ref) (netpol.Selection, []cluster.Pod, error) {
	if got, ok := p.selections[ref]; ok {
		return got.sel, got.pods, nil
	}
	sel, pods, err := p.Cluster.Select(ctx, ref)
	if err == nil && p.selections != nil {
		p.selections[ref] = selection{sel: sel, pods: pods}
	}
	return sel, pods, err
}

// Plan is the desired state for one server.
type Plan struct {
	Server intent.Server
	// Intents are the live ClientIntents that target the server.
	Intents []v2beta1.ClientIntents
	// KindMeant is set when the server's kind is a well-known kind spelled in another
	// letter case: Kubernetes kinds are case-sensitive, so no workload has that kind, and
	// the server gets no policy. It is the kind the spelling resembles.
	KindMeant string
	// Protected is true when a ProtectedService covers the server.
	Protected bool
	// Enforced is true when the roll-out settings enforce the server.
	Enforced bool
	// Exists is true when the server's pods can be selected (workload, pods or Service found).
	Exists bool
	// NamespaceMissing is true when the server's namespace does not exist (or is being
	// deleted): no policy can be written there until it does.
	NamespaceMissing bool
	// NoSelector is true for a Service without a pod selector: no policy can select its pods.
	NoSelector bool
	// ProtectedVia names the protected identity behind a Service target that makes it
	// enforced in shadow mode.
	ProtectedVia string
	// Policy is the desired NetworkPolicy; nil means none must exist.
	Policy *networkingv1.NetworkPolicy
	// Involved are the identities the policy selects (server and clients); their pods'
	// operator labels must follow how the policy selects them.
	Involved []intent.Ref
}

// Plan computes the desired policy of one server.
func (p Planner) Plan(ctx context.Context, server intent.Server) (Plan, error) {
	plan := Plan{Server: server}
	intents, err := p.Cluster.IntentsFor(ctx, cluster.IndexServer, cluster.ServerIndexKey(server))
	if err != nil {
		return plan, err
	}
	plan.Intents = intents
	if meant, ok := intent.WellKnownKind(server.Kind); ok && meant != server.Kind && !server.Service {
		plan.KindMeant = meant
		return plan, nil
	}
	protected, err := p.Cluster.ProtectedNamed(ctx, server.Namespace, server.Name)
	if err != nil {
		return plan, err
	}
	for i := range protected {
		if intent.Covers(&protected[i], server) {
			plan.Protected = true
		}
	}
	if len(intents) == 0 && !p.protects(protected, server) {
		return plan, nil
	}
	plan.Enforced = p.Options.Enforces(server.Namespace, plan.Protected)
	ready, err := p.Cluster.NamespaceReady(ctx, server.Namespace)
	if err != nil {
		return plan, err
	}
	if !ready {
		plan.NamespaceMissing = true
		return plan, nil
	}

	in := netpol.Input{Server: server}
	var podLabels []map[string]string
	if server.Service {
		var svc corev1.Service
		err := p.Cluster.Get(ctx, client.ObjectKey{Namespace: server.Namespace, Name: server.Name}, &svc)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return plan, fmt.Errorf("reading Service %s/%s: %w", server.Namespace, server.Name, err)
		case len(svc.Spec.Selector) == 0:
			plan.NoSelector = true
		default:
			plan.Exists = true
			in.Pods = netpol.ServiceSelector(&svc)
			in.Ports = netpol.ServicePorts(&svc)
			pods, err := p.Cluster.PodsMatching(ctx, server.Namespace, svc.Spec.Selector)
			if err != nil {
				return plan, err
			}
			for _, pod := range pods {
				podLabels = append(podLabels, pod.Meta.Labels)
			}
			if !plan.Enforced {
				if plan.ProtectedVia, err = p.protectedBehind(ctx, pods); err != nil {
					return plan, err
				}
				plan.Enforced = plan.ProtectedVia != ""
			}
		}
	} else {
		sel, pods, err := p.selectPods(ctx, server.Ref)
		if err != nil {
			return plan, err
		}
		in.Pods = sel.Selector
		plan.Involved = append(plan.Involved, server.Ref)
		if plan.Exists, err = p.Cluster.Exists(ctx, server.Ref); err != nil {
			return plan, err
		}
		for _, pod := range pods {
			if server.Matches(pod.Identity) {
				podLabels = append(podLabels, pod.Meta.Labels)
			}
		}
	}
	if server.Namespace == netpol.DNSNamespace {
		dns, err := p.Cluster.DNSService(ctx)
		if err != nil {
			return plan, err
		}
		in.DNSPorts = netpol.ClusterDNS{Service: dns}.PortsFor(server, podLabels)
	}
	for i := range intents {
		ref := intent.Client(&intents[i])
		sel, _, err := p.selectPods(ctx, ref)
		if err != nil {
			return plan, err
		}
		plan.Involved = append(plan.Involved, ref)
		in.Clients = append(in.Clients, netpol.Client{Ref: ref, Pods: sel.Selector})
	}
	if plan.Enforced {
		plan.Policy = netpol.Compile(in)
	}
	return plan, nil
}

// kindMisspelled says why a server whose kind is a well-known kind in another letter case
// gets no policy.
func kindMisspelled(server intent.Server, meant string) string {
	return fmt.Sprintf("kind %q is not a Kubernetes kind (kinds are case-sensitive; did you mean %s?): no workload has it, so no NetworkPolicy is written for %s", server.Kind, meant, server)
}

// protectedBehind returns the name of a protected identity among the pods a Service
// fronts, if there is one: in shadow mode, the Service's declared clients must reach the
// pods the ProtectedService closes.
func (p Planner) protectedBehind(ctx context.Context, pods []cluster.Pod) (string, error) {
	seen := map[string]bool{}
	for _, pod := range pods {
		id := pod.Identity
		if seen[id.Name] {
			continue
		}
		seen[id.Name] = true
		protected, err := p.Cluster.ProtectedNamed(ctx, id.Namespace, id.Name)
		if err != nil {
			return "", err
		}
		for i := range protected {
			if k := protected[i].Spec.Kind; k == "" || k == id.Kind {
				return id.Name, nil
			}
		}
	}
	return "", nil
}

// protects reports whether a ProtectedService asks for this exact server to be protected
// on its own (with no intents, that means default-deny).
func (p Planner) protects(protected []v2beta1.ProtectedService, server intent.Server) bool {
	for i := range protected {
		if !server.Service && intent.Protected(&protected[i]) == server {
			return true
		}
	}
	return false
}

// LabelsWanted returns the operator labels a pod of identity id must carry: the identity
// labels when some intents or ProtectedService refer to it and its pods are selected by
// label, none otherwise.
func (p Planner) LabelsWanted(ctx context.Context, id identity.Identity) (map[string]string, error) {
	key := cluster.NameKey(id.Namespace, id.Name)
	var refs []intent.Ref
	asClient, err := p.Cluster.IntentsFor(ctx, cluster.IndexClient, key)
	if err != nil {
		return nil, err
	}
	for i := range asClient {
		refs = append(refs, intent.Client(&asClient[i]))
	}
	asServer, err := p.Cluster.IntentsFor(ctx, cluster.IndexServerName, key)
	if err != nil {
		return nil, err
	}
	for i := range asServer {
		for _, s := range intent.Servers(&asServer[i]) {
			if !s.Service {
				refs = append(refs, s.Ref)
			}
		}
	}
	protected, err := p.Cluster.ProtectedNamed(ctx, id.Namespace, id.Name)
	if err != nil {
		return nil, err
	}
	for i := range protected {
		refs = append(refs, intent.Protected(&protected[i]).Ref)
	}
	for _, ref := range refs {
		if !ref.Matches(id) {
			continue
		}
		sel, _, err := p.selectPods(ctx, ref)
		if err != nil {
			return nil, err
		}
		if sel.ByLabel {
			return netpol.IdentityLabels(id), nil
		}
	}
	return nil, nil
}
