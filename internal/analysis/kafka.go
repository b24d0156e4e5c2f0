package analysis

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
)

// broker returns the outcome of the KafkaServerConfig describing the endpoint's workload.
func (r *Result) broker(e Endpoint) (*Broker, error) {
	for i := range r.Brokers {
		b := &r.Brokers[i]
		s := b.Server
		if s.Namespace == e.Namespace && s.Name == e.Name && (e.Kind == "" || s.Kind == "" || s.Kind == e.Kind) && b.Err == nil {
			return b, nil
		}
	}
	for i := range r.Brokers {
		if s := r.Brokers[i].Server; s.Namespace == e.Namespace && s.Name == e.Name {
			return &r.Brokers[i], nil
		}
	}
	return nil, fmt.Errorf("%s: no KafkaServerConfig in the inputs describes it", e)
}

// explainKafka answers whether the client may perform an operation on a topic of the
// broker: it compiles the one call asked about with the broker's compiler, and checks
// every ACL that call needs against the ACLs the operator would hold, as the broker's
// authorizer does (a matching deny wins; no matching allow denies, the setting the
// operator requires of brokers).
func (r *Result) explainKafka(q Query) (Explanation, error) {
	e := Explanation{Query: q, Point: Kafka}
	b, err := r.broker(q.To)
	if err != nil {
		return e, err
	}
	if b.Err != nil {
		e.Verdict = Unknown
		e.Chain = []string{fmt.Sprintf("KafkaServerConfig %s: %v: the operator changes nothing on the broker", b.Config, b.Err)}
		return e, nil
	}
	client := intent.Ref{Namespace: q.From.Namespace, Name: q.From.Name, Kind: q.From.Kind}
	needed, principal, err := b.needs(client, q.To, q.Topic, q.Operation)
	if err != nil {
		return e, err
	}
	if !b.Enforced {
		e.Verdict, e.Default = Unknown, true
		e.Chain = []string{fmt.Sprintf("shadow mode: the operator writes no ACL on %s (no ProtectedService names it): the broker's own ACLs decide", b.Server.Short())}
		return e, nil
	}
	e.Verdict = Allowed
	var grants []string
	for _, need := range needed {
		allow, deny := authorize(b.ACLs, need)
		switch {
		case deny != nil:
			e.Verdict = Denied
			e.Chain = append(e.Chain, fmt.Sprintf("ACL %s on KafkaServerConfig %s denies %s", deny, b.Config, need.Operation))
		case allow == nil:
			e.Verdict = Denied
			e.Missing = append(e.Missing, fmt.Sprintf("no ACL allows %s %s on %s %q", principal, need.Operation, strings.ToLower(string(need.Resource)), need.Name))
		default:
			grants = append(grants, fmt.Sprintf("-> ACL %s", allow))
		}
	}
	declared := b.declared(r.Snapshot.ClientIntents(), client, r.named)
	if e.Verdict == Allowed {
		for _, d := range declared {
			e.Chain = append(e.Chain, fmt.Sprintf("%s declares kafka %s", d.name, b.Server.Short()))
		}
		e.Chain = append(e.Chain, fmt.Sprintf("-> KafkaServerConfig %s (principal %s)", b.Config, principal))
		e.Chain = append(e.Chain, grants...)
		return e, nil
	}
	e.Chain = append(e.Chain, fmt.Sprintf("%s is protected: the operator holds %d ACLs on KafkaServerConfig %s", b.Server.Short(), len(b.ACLs), b.Config))
	if len(declared) == 0 {
		e.Missing = append([]string{fmt.Sprintf("%s is protected; %s declares no Kafka call to it", b.Server.Short(), q.From.Short())}, e.Missing...)
		return e, nil
	}
	for _, d := range declared {
		if res := b.Result.Intents[d.key]; res.Err != nil {
			e.Missing = append(e.Missing, fmt.Sprintf("%s is invalid for this broker: %v", d.name, res.Err))
			continue
		}
		e.Missing = append(e.Missing, fmt.Sprintf("%s declares %s on %s, not %s %s: %s", q.From.Short(), strings.Join(d.topics, "; "), b.Server.Short(), q.Topic, q.Operation, d.name))
	}
	return e, nil
}

// declaration is what one ClientIntents of a client declares for a broker.
type declaration struct {
	key    types.NamespacedName
	name   string
	topics []string
}

// declared returns the client's ClientIntents that target the broker.
func (b *Broker) declared(all []v2beta1.ClientIntents, client intent.Ref, named func(*v2beta1.ClientIntents) string) []declaration {
	var out []declaration
	for i := range all {
		ci := &all[i]
		c := intent.Client(ci)
		if c.Namespace != client.Namespace || c.Name != client.Name || !b.compiler.Targets(ci) {
			continue
		}
		d := declaration{key: types.NamespacedName{Namespace: ci.Namespace, Name: ci.Name}, name: named(ci)}
		for _, t := range ci.Spec.Targets {
			if t.Kafka == nil {
				continue
			}
			for _, topic := range t.Kafka.Topics {
				var ops []string
				for _, op := range topic.Operations {
					ops = append(ops, string(op))
				}
				d.topics = append(d.topics, topic.Name+" "+strings.Join(ops, ","))
			}
		}
		out = append(out, d)
	}
	return out
}

// needs returns the ACLs one call (topic, intents operation) needs on the broker, by
// compiling that call alone with the broker's compiler, and the client's principal.
func (b *Broker) needs(client intent.Ref, broker Endpoint, topic, op string) ([]acl.ACL, string, error) {
	probe := v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: client.Namespace, Name: "probe"},
		Spec: v2beta1.ClientIntentsSpec{
			Workload: v2beta1.Workload{Name: client.Name, Kind: client.Kind},
			Targets: []v2beta1.Target{{Kafka: &v2beta1.KafkaTarget{
				Name:   broker.Name + "." + broker.Namespace,
				Topics: []v2beta1.KafkaTopic{{Name: topic, Operations: []v2beta1.KafkaOperation{v2beta1.KafkaOperation(op)}}},
			}}},
		},
	}
	alone := b.compiler
	alone.Topics = nil
	res, err := acl.Compile(alone, []v2beta1.ClientIntents{probe})
	if err != nil {
		return nil, "", fmt.Errorf("compiling %s %s for %s: %w", topic, op, client, err)
	}
	got := res.Intents[types.NamespacedName{Namespace: client.Namespace, Name: "probe"}]
	if got.Err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", topic, op, got.Err)
	}
	return res.ACLs.Sorted(), got.Principal, nil
}

// implied are the operations an allowed operation also allows, as Kafka's authorizer
// has them.
var implied = map[acl.Operation][]acl.Operation{
	acl.Describe:        {acl.Read, acl.Write, acl.Delete, acl.Alter},
	acl.DescribeConfigs: {acl.AlterConfigs},
}

// authorize checks one needed ACL against a broker's ACLs: the deny that matches it, or
// else the allow that does.
func authorize(held []acl.ACL, need acl.ACL) (allow, deny *acl.ACL) {
	for i := range held {
		a := &held[i]
		if a.Resource != need.Resource || (a.Principal != need.Principal && a.Principal != acl.Everyone) || !resourceMatches(*a, need) {
			continue
		}
		switch {
		case a.Permission == acl.Deny && (a.Operation == need.Operation || a.Operation == acl.All):
			return nil, a
		case a.Permission == acl.Allow && allow == nil &&
			(a.Operation == need.Operation || a.Operation == acl.All || slices.Contains(implied[need.Operation], a.Operation)):
			allow = a
		}
	}
	return allow, nil
}

// resourceMatches reports whether a held ACL's resource pattern covers the needed one:
// a literal by name or "*", a prefix by prefix (a needed prefix only by a shorter one).
func resourceMatches(a, need acl.ACL) bool {
	switch a.Pattern {
	case acl.Literal:
		return a.Name == "*" || a.Name == need.Name && need.Pattern == acl.Literal
	case acl.Prefixed:
		return strings.HasPrefix(need.Name, a.Name)
	}
	return false
}
