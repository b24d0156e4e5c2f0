package controller

import (
	"context"
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
)

// PolicyPointName is the NetworkPolicy enforcement point's name in status.
const PolicyPointName = "NetworkPolicy"

// PolicyPoint reports, per target, what the NetworkPolicies in the cache enforce: a target
// is Enforced only when its server's policy is written as planned and every pod the policy
// selects by the operator's labels carries them, on both ends of the call.
type PolicyPoint struct {
	Client  client.Client
	Planner Planner

	progress *progress
}

// Name implements enforcement.Point.
func (p *PolicyPoint) Name() string { return PolicyPointName }

// Report implements enforcement.Point.
func (p *PolicyPoint) Report(ctx context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	rep, err := p.report(ctx, ci)
	return rep.states, err
}

// policyReport is the point's report with what the status controller needs beside it.
type policyReport struct {
	states []enforcement.TargetState
	// missing are the targets whose server was not found.
	missing []string
	// inHand counts the targets that wait only for a policy the NetworkPolicy controller
	// is writing (or for the labels it is putting on pods).
	inHand int
}

// verdict is the state of one server, shared by the targets that reach it.
type verdict struct {
	state   enforcement.State
	message string
	missing bool
	inHand  bool
}

func (p *PolicyPoint) report(ctx context.Context, ci *v2beta1.ClientIntents) (policyReport, error) {
	var rep policyReport
	planner := p.Planner.forOneReconcile()
	clientRef := intent.Client(ci)
	clientGap, err := planner.unlabelled(ctx, clientRef)
	if err != nil {
		return rep, err
	}
	verdicts := map[intent.Server]verdict{}
	for _, t := range ci.Spec.Targets {
		server, ok := intent.ServerOf(ci, t)
		if !ok {
			continue
		}
		v, done := verdicts[server]
		if !done {
			if v, err = p.verdict(ctx, planner, server, clientRef, clientGap); err != nil {
				return rep, err
			}
			verdicts[server] = v
		}
		name := intent.TargetName(t)
		rep.states = append(rep.states, enforcement.TargetState{Target: name, State: v.state, Message: v.message})
		if v.missing {
			rep.missing = append(rep.missing, name)
		}
		if v.inHand {
			rep.inHand++
		}
	}
	return rep, nil
}

func (p *PolicyPoint) verdict(ctx context.Context, planner Planner, server intent.Server, clientRef intent.Ref, clientGap int) (verdict, error) {
	plan, err := planner.Plan(ctx, server)
	if err != nil {
		return verdict{}, err
	}
	switch {
	case plan.KindMeant != "":
		return verdict{state: enforcement.Failed, message: kindMisspelled(server, plan.KindMeant)}, nil
	case plan.NamespaceMissing:
		return verdict{state: enforcement.Waiting, missing: true,
			message: fmt.Sprintf("waiting for namespace %s: it does not exist yet; the NetworkPolicy is written as soon as it does", server.Namespace)}, nil
	case server.Service && plan.NoSelector:
		return verdict{state: enforcement.Failed,
			message: fmt.Sprintf("Service %s/%s has no pod selector, so no NetworkPolicy can select the pods behind it; target their workload instead (kubernetes: {name: ...})", server.Namespace, server.Name)}, nil
	case server.Service && !plan.Exists:
		return verdict{state: enforcement.Waiting, missing: true,
			message: fmt.Sprintf("waiting for Service %s/%s: not found; its NetworkPolicy is written once it exists", server.Namespace, server.Name)}, nil
	case !plan.Enforced:
		return verdict{state: enforcement.Shadow,
			message: fmt.Sprintf("shadow mode: not enforced; a ProtectedService for %s, or enforcing namespace %s, would enforce it", server, server.Namespace)}, nil
	case plan.Policy == nil:
		return verdict{state: enforcement.Failed, message: "no NetworkPolicy can select the server's pods"}, nil
	}
	key := client.ObjectKeyFromObject(plan.Policy)
	var live networkingv1.NetworkPolicy
	err = p.Client.Get(ctx, key, &live)
	if err != nil && !apierrors.IsNotFound(err) {
		return verdict{}, fmt.Errorf("reading NetworkPolicy %s: %w", key, err)
	}
	if err != nil || !netpol.UpToDate(plan.Policy, &live) {
		if p.progress != nil {
			if _, _, blocked := p.progress.state(serverRequest(server)); blocked != "" {
				return verdict{state: enforcement.Failed, message: blocked}, nil
			}
		}
		return verdict{state: enforcement.Waiting, inHand: true, message: fmt.Sprintf("waiting for NetworkPolicy %s to be written", key)}, nil
	}
	if !server.Service {
		gap, err := planner.unlabelled(ctx, server.Ref)
		if err != nil {
			return verdict{}, err
		}
		if gap > 0 {
			return verdict{state: enforcement.Waiting, inHand: true, message: fmt.Sprintf("waiting for %d pod(s) of %s to be labelled for NetworkPolicy %s", gap, server.Ref, key)}, nil
		}
	}
	if clientGap > 0 {
		return verdict{state: enforcement.Waiting, inHand: true, message: fmt.Sprintf("waiting for %d pod(s) of client %s to be labelled for NetworkPolicy %s", clientGap, clientRef, key)}, nil
	}
	v := verdict{state: enforcement.Enforced, message: fmt.Sprintf("NetworkPolicy %s admits this client and no undeclared one", key)}
	if plan.ProtectedVia != "" {
		v.message += fmt.Sprintf(" (enforced in shadow mode: the Service fronts the protected %s)", plan.ProtectedVia)
	}
	if !plan.Exists {
		v.missing = true
		v.message += fmt.Sprintf("; no pods of %s exist yet, the policy selects them when they do", server.Ref)
	}
	return v, nil
}

// unlabelled counts the pods of ref that a policy selects by the operator's labels but
// that do not carry them yet.
func (p Planner) unlabelled(ctx context.Context, ref intent.Ref) (int, error) {
	sel, pods, err := p.selectPods(ctx, ref)
	if err != nil || !sel.ByLabel {
		return 0, err
	}
	want := netpol.PodLabels(ref)
	n := 0
	for _, pod := range pods {
		if !ref.Matches(pod.Identity) || !pod.Meta.DeletionTimestamp.IsZero() {
			continue
		}
		for k, v := range want {
			if pod.Meta.Labels[k] != v {
				n++
				break
			}
		}
	}
	return n, nil
}

// isDNSService reports whether a Service is where the cluster's DNS is found.
func isDNSService(namespace, name string) bool {
	return namespace == netpol.DNSNamespace && slices.Contains(netpol.DNSServiceNames, name)
}
