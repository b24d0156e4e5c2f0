package networkpolicy

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// PointName is the NetworkPolicy enforcement point's name in status.
const PointName = "NetworkPolicy"

// PolicyPoint reports, per target, what the NetworkPolicies in the cache enforce: a target
// is Enforced only when its server's policy is written as planned and every pod the policy
// selects by the operator's labels carries them, on both ends of the call.
type PolicyPoint struct {
	Client  client.Client
	Planner compile.Planner

	progress *Progress
}

// Name implements enforcement.Point.
func (p *PolicyPoint) Name() string { return PointName }

// Report implements enforcement.Point.
func (p *PolicyPoint) Report(ctx context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	rep, err := p.FullReport(ctx, ci)
	return rep.States, err
}

// Report is the point's report with what the status controller needs beside it.
type Report struct {
	States []enforcement.TargetState
	// Missing are the targets whose server was not found.
	Missing []string
	// InHand counts the targets that wait only for a policy the NetworkPolicy controller
	// is writing (or for the labels it is putting on pods).
	InHand int
}

// verdict is the state of one server, shared by the targets that reach it.
type verdict struct {
	state   enforcement.State
	message string
	missing bool
	inHand  bool
}

// FullReport is Report with the targets not found and the targets in hand.
func (p *PolicyPoint) FullReport(ctx context.Context, ci *v2beta1.ClientIntents) (Report, error) {
	var rep Report
	planner := p.Planner.ForOneReconcile()
	clientRef := intent.Client(ci)
	clientGap, err := planner.Unlabelled(ctx, clientRef)
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
		rep.States = append(rep.States, enforcement.TargetState{Target: name, State: v.state, Message: v.message})
		if v.missing {
			rep.Missing = append(rep.Missing, name)
		}
		if v.inHand {
			rep.InHand++
		}
	}
	return rep, nil
}

func (p *PolicyPoint) verdict(ctx context.Context, planner compile.Planner, server intent.Server, clientRef intent.Ref, clientGap int) (verdict, error) {
	plan, err := planner.Plan(ctx, server)
	if err != nil {
		return verdict{}, err
	}
	switch {
	case plan.KindMeant != "":
		return verdict{state: enforcement.Failed, message: compile.KindMisspelled(server, plan.KindMeant)}, nil
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
	if err != nil || !compile.UpToDate(plan.Policy, &live) {
		if p.progress != nil {
			if _, _, blocked := p.progress.State(ServerRequest(server)); blocked != "" {
				return verdict{state: enforcement.Failed, message: blocked}, nil
			}
		}
		return verdict{state: enforcement.Waiting, inHand: true, message: fmt.Sprintf("waiting for NetworkPolicy %s to be written", key)}, nil
	}
	if !server.Service {
		gap, err := planner.Unlabelled(ctx, server.Ref)
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

// Progress is what the policy reconciler has in hand and how its last attempts ended.
func (p *PolicyPoint) Progress() *Progress { return p.progress }
