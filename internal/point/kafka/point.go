package kafka

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
)

// PointName is the Kafka enforcement point's name in ClientIntents status.
const PointName = "KafkaACL"

// Point reports, for each kafka target of a ClientIntents whose broker has a
// KafkaServerConfig, whether the broker enforces it. Targets of brokers without a
// KafkaServerConfig are not handled here (only the NetworkPolicy point covers them).
type Point struct {
	reader client.Reader

	mu     sync.Mutex
	states map[types.NamespacedName]syncState

	notices enforcement.Notices
}

var _ enforcement.Point = (*Point)(nil)

// Name implements enforcement.Point.
func (p *Point) Name() string { return PointName }

// Subscribe implements enforcement.Point: after each broker sync, the ClientIntents of
// that broker whose outcome changed are sent.
func (p *Point) Subscribe() <-chan event.TypedGenericEvent[client.Object] {
	return p.notices.Subscribe()
}

// Protection implements enforcement.Point: a ProtectedService decides whether a broker
// is enforced, which its KafkaServerConfig status says, and is not reported here.
func (p *Point) Protection(context.Context, *v2beta1.ProtectedService) ([]enforcement.TargetState, error) {
	return nil, nil
}

func (p *Point) record(key types.NamespacedName, st syncState) {
	p.mu.Lock()
	prev := p.states[key]
	p.states[key] = st
	p.mu.Unlock()
	notify := map[types.NamespacedName]bool{}
	for k, s := range st.intents {
		if old, ok := prev.intents[k]; !ok || old.generation != s.generation || fmt.Sprint(old.err) != fmt.Sprint(s.err) ||
			prev.enforced != st.enforced || prev.inSync != st.inSync || (prev.brokerErr == nil) != (st.brokerErr == nil) || (prev.configErr == nil) != (st.configErr == nil) ||
			(prev.apiErr == nil) != (st.apiErr == nil) {
			notify[k] = true
		}
	}
	for k := range prev.intents {
		if _, ok := st.intents[k]; !ok {
			notify[k] = true
		}
	}
	for k := range notify {
		p.notices.Send(enforcement.IntentsNotice(k))
	}
}

func (p *Point) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.states, key)
}

// Outcomes implements enforcement.Point.
func (p *Point) Outcomes(ctx context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	var out []enforcement.TargetState
	seen := map[string]bool{}
	for _, t := range ci.Spec.Targets {
		if t.Kafka == nil || seen[t.Kafka.Name] {
			continue
		}
		seen[t.Kafka.Name] = true
		name, ns := intent.SplitName(t.Kafka.Name, ci.Namespace)
		var list v2beta1.KafkaServerConfigList
		if err := p.reader.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexKafkaWorkload: name}); err != nil {
			return nil, fmt.Errorf("listing KafkaServerConfigs for %s: %w", t.Kafka.Name, err)
		}
		if len(list.Items) == 0 {
			continue
		}
		out = append(out, p.report(ci, intent.TargetName(t), oldest(list.Items)))
	}
	return out, nil
}

func oldest(items []v2beta1.KafkaServerConfig) types.NamespacedName {
	best := items[0]
	for _, o := range items[1:] {
		if o.CreationTimestamp.Before(&best.CreationTimestamp) || o.CreationTimestamp.Equal(&best.CreationTimestamp) && o.Name < best.Name {
			best = o
		}
	}
	return types.NamespacedName{Namespace: best.Namespace, Name: best.Name}
}

func (p *Point) report(ci *v2beta1.ClientIntents, target string, ksc types.NamespacedName) enforcement.TargetState {
	p.mu.Lock()
	st, ok := p.states[ksc]
	p.mu.Unlock()
	ts := enforcement.TargetState{Target: target}
	key := types.NamespacedName{Namespace: ci.Namespace, Name: ci.Name}
	is, known := st.intents[key]
	switch {
	case !ok:
		ts.State, ts.Message = enforcement.Waiting, fmt.Sprintf("KafkaServerConfig %s has not been synced yet", ksc)
	case st.configErr != nil:
		ts.State, ts.Message = enforcement.Failed, fmt.Sprintf("KafkaServerConfig %s: %v", ksc, st.configErr)
	case !known || is.generation != ci.Generation:
		ts.State, ts.Message = enforcement.Waiting, fmt.Sprintf("the ACLs of generation %d are not yet on broker %s", ci.Generation, ksc)
	case is.err != nil:
		ts.State, ts.Message = enforcement.Failed, fmt.Sprintf("no ACL changed for this client on broker %s: %v", ksc, is.err)
	case st.brokerErr != nil:
		// As on the KafkaServerConfig: a refusal waits for someone to change the
		// credentials, anything else may pass on its own.
		ts.State, ts.Message = enforcement.Waiting, fmt.Sprintf("broker %s: %v; retrying", ksc, st.brokerErr)
		if reason, _ := brokerFailure(st.brokerErr); readiness(reason) == enforcement.ReasonFailed {
			ts.State = enforcement.Failed
		}
	case st.apiErr != nil:
		ts.State, ts.Message = enforcement.Waiting, fmt.Sprintf("broker %s: %v; retrying", ksc, st.apiErr)
	case !st.enforced:
		ts.State, ts.Message = enforcement.Shadow, fmt.Sprintf("shadow mode: broker %s gets no ACLs until a ProtectedService names it", ksc)
	case st.inSync:
		ts.State, ts.Message = enforcement.Enforced, fmt.Sprintf("the ACLs on broker %s allow exactly the declared topic operations", ksc)
	default:
		ts.State, ts.Message = enforcement.Waiting, fmt.Sprintf("broker %s is not yet in sync", ksc)
	}
	return ts
}
