package compile

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/intent"
)

// Planner computes, from the facts, what one server's policy should be.
type Planner struct {
	Facts   facts.Facts
	Options enforcement.Options

	// selections, when set, remembers pod selections for the span of one reconcile, which
	// asks for the same identities' selection several times.
	selections map[intent.Ref]selection
}

type selection struct {
	sel    Selection
	pods   []facts.Pod
	exists bool
}

// ForOneReconcile returns a planner that computes each identity's selection once; it must
// not outlive the reconcile, as the facts move on.
func (p Planner) ForOneReconcile() Planner {
	p.selections = map[intent.Ref]selection{}
	return p
}

// SelectPods returns how the pods of ref are selected, and those pods.
func (p Planner) SelectPods(ctx context.Context, ref intent.Ref) (Selection, []facts.Pod, error) {
	got, err := p.selectAndFind(ctx, ref)
	return got.sel, got.pods, err
}

// selectAndFind returns ref's selection, remembered for the planner's reconcile, with
// whether ref exists, which Select's answers already tell.
func (p Planner) selectAndFind(ctx context.Context, ref intent.Ref) (selection, error) {
	if got, ok := p.selections[ref]; ok {
		return got, nil
	}
	var got selection
	var err error
	got.sel, got.pods, got.exists, err = selectAndFind(ctx, p.Facts, ref)
	if err == nil && p.selections != nil {
		p.selections[ref] = got
	}
	return got, err
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
	// Protectors are the live ProtectedServices that cover the server.
	Protectors []v2beta1.ProtectedService
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
	intents, err := p.Facts.IntentsTargeting(ctx, server)
	if err != nil {
		return plan, err
	}
	plan.Intents = intents
	if meant, ok := intent.WellKnownKind(server.Kind); ok && meant != server.Kind && !server.Service {
		plan.KindMeant = meant
		return plan, nil
	}
	protected, err := p.Facts.ProtectedNamed(ctx, server.Namespace, server.Name)
	if err != nil {
		return plan, err
	}
	for i := range protected {
		if intent.Covers(&protected[i], server) {
			plan.Protected = true
			plan.Protectors = append(plan.Protectors, protected[i])
		}
	}
	if len(intents) == 0 && !p.protects(protected, server) {
		return plan, nil
	}
	plan.Enforced = p.Options.Enforces(server.Namespace, plan.Protected)
	ready, err := p.Facts.NamespaceReady(ctx, server.Namespace)
	if err != nil {
		return plan, err
	}
	if !ready {
		plan.NamespaceMissing = true
		return plan, nil
	}

	in := Input{Server: server}
	var podLabels []map[string]string
	if server.Service {
		svc, err := p.Facts.Service(ctx, server.Namespace, server.Name)
		switch {
		case err != nil:
			return plan, err
		case svc == nil:
		case len(svc.Spec.Selector) == 0:
			plan.NoSelector = true
		default:
			plan.Exists = true
			in.Pods = ServiceSelector(svc)
			in.Ports = ServicePorts(svc)
			pods, err := p.Facts.PodsMatching(ctx, server.Namespace, svc.Spec.Selector)
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
		got, err := p.selectAndFind(ctx, server.Ref)
		if err != nil {
			return plan, err
		}
		in.Pods = got.sel.Selector
		plan.Involved = append(plan.Involved, server.Ref)
		plan.Exists = got.exists
		for _, pod := range got.pods {
			if server.Matches(pod.Identity) {
				podLabels = append(podLabels, pod.Meta.Labels)
			}
		}
	}
	if server.Namespace == DNSNamespace {
		dns, err := DNSService(ctx, p.Facts)
		if err != nil {
			return plan, err
		}
		in.DNSPorts = ClusterDNS{Service: dns}.PortsFor(server, podLabels)
	}
	for i := range intents {
		ref := intent.Client(&intents[i])
		sel, _, err := p.SelectPods(ctx, ref)
		if err != nil {
			return plan, err
		}
		plan.Involved = append(plan.Involved, ref)
		in.Clients = append(in.Clients, Client{Ref: ref, Pods: sel.Selector})
	}
	if plan.Enforced {
		plan.Policy = Compile(in)
	}
	return plan, nil
}

// KindMisspelled says why a server whose kind is a well-known kind in another letter case
// gets no policy.
func KindMisspelled(server intent.Server, meant string) string {
	return fmt.Sprintf("kind %q is not a Kubernetes kind (kinds are case-sensitive; did you mean %s?): no workload has it, so no NetworkPolicy is written for %s", server.Kind, meant, server)
}

// protectedBehind returns the name of a protected identity among the pods a Service
// fronts, if there is one: in shadow mode, the Service's declared clients must reach the
// pods the ProtectedService closes.
func (p Planner) protectedBehind(ctx context.Context, pods []facts.Pod) (string, error) {
	seen := map[string]bool{}
	for _, pod := range pods {
		id := pod.Identity
		if seen[id.Name] {
			continue
		}
		seen[id.Name] = true
		protected, err := p.Facts.ProtectedNamed(ctx, id.Namespace, id.Name)
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
