package acl

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// authorize is Apache Kafka's StandardAuthorizer decision, written independently of the
// compiler: a matching DENY wins, else a matching ALLOW grants; ALLOW on Read, Write,
// Delete or Alter implies Describe, ALLOW on AlterConfigs implies DescribeConfigs.
func authorize(acls Set, principal string, res ResourceType, name string, op Operation) bool {
	allowed := false
	for a := range acls {
		if a.Resource != res || (a.Principal != principal && a.Principal != Everyone) {
			continue
		}
		switch a.Pattern {
		case Literal:
			if a.Name != name && a.Name != "*" {
				continue
			}
		case Prefixed:
			if !strings.HasPrefix(name, a.Name) {
				continue
			}
		}
		matches := a.Operation == op || a.Operation == All
		if !matches && a.Permission == Allow {
			matches = op == Describe && slices.Contains([]Operation{Read, Write, Delete, Alter}, a.Operation) ||
				op == DescribeConfigs && a.Operation == AlterConfigs
		}
		if !matches {
			continue
		}
		if a.Permission == Deny {
			return false
		}
		allowed = true
	}
	return allowed
}

// declared says, from the intents alone, whether a client may perform op on a topic.
func declared(cis []v2beta1.ClientIntents, client, topic string, op Operation) bool {
	for _, ci := range cis {
		if ci.Spec.Workload.Name != client {
			continue
		}
		for _, t := range ci.Spec.Targets {
			if t.Kafka == nil || t.Kafka.Name != "kafka.kafka" {
				continue
			}
			for _, tp := range t.Kafka.Topics {
				covers := tp.Name == "*" || tp.Name == topic || strings.HasSuffix(tp.Name, "*") && strings.HasPrefix(topic, strings.TrimSuffix(tp.Name, "*"))
				if !covers {
					continue
				}
				for _, o := range tp.Operations {
					switch {
					case o == "all",
						o == "consume" && (op == Read || op == Describe),
						o == "produce" && (op == Write || op == Describe),
						o == "describe" && op == Describe,
						o == "alter" && (op == Alter || op == Describe),
						o == "delete" && (op == Delete || op == Describe),
						o == "create" && op == Create,
						o == "AlterConfigs" && (op == AlterConfigs || op == DescribeConfigs),
						o == "DescribeConfigs" && op == DescribeConfigs:
						return true
					}
				}
			}
		}
	}
	return false
}

// For random intents, every (client, topic, operation) the compiled ACLs allow on a
// broker with Kafka's semantics is declared, and every declared one is allowed: the
// compiler is exact, for topics, prefixes and wildcards.
func TestCompileIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	clients := []string{"a", "b", "c", "d"}
	topics := []string{"orders", "orders.eu", "ord", "payments", "p", "x"}
	patterns := []string{"orders", "orders*", "ord*", "payments", "p*", "*", "x"}
	ops := []v2beta1.KafkaOperation{"all", "consume", "produce", "create", "alter", "delete", "describe", "DescribeConfigs", "AlterConfigs"}
	probeOps := []Operation{Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs}
	for iter := 0; iter < 300; iter++ {
		var cis []v2beta1.ClientIntents
		for i, c := range clients {
			if rng.IntN(4) == 0 {
				continue
			}
			ci := v2beta1.ClientIntents{}
			ci.Namespace, ci.Name, ci.Spec.Workload.Name = "ns", fmt.Sprintf("%s-%d", c, i), c
			target := v2beta1.KafkaTarget{Name: "kafka.kafka"}
			for n := rng.IntN(4); n >= 0; n-- {
				tp := v2beta1.KafkaTopic{Name: patterns[rng.IntN(len(patterns))]}
				for m := rng.IntN(3); m >= 0; m-- {
					if o := ops[rng.IntN(len(ops))]; !slices.Contains(tp.Operations, o) {
						tp.Operations = append(tp.Operations, o)
					}
				}
				target.Topics = append(target.Topics, tp)
			}
			ci.Spec.Targets = []v2beta1.Target{{Kafka: &target}}
			if rng.IntN(5) == 0 { // a target on another broker must not leak in
				ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: "other.kafka", Topics: []v2beta1.KafkaTopic{{Name: "*", Operations: []v2beta1.KafkaOperation{"all"}}}}})
			}
			cis = append(cis, ci)
		}
		r, err := Compile(broker, cis)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(clients, "stranger") {
			p := "User:CN=" + c + ".ns,O=intentguard"
			for _, topic := range topics {
				for _, op := range probeOps {
					got, want := authorize(r.ACLs, p, Topic, topic, op), declared(cis, c, topic, op)
					if got != want {
						t.Fatalf("iteration %d: %s %s on %s: allowed=%v, declared=%v\nACLs:\n%s", iter, c, op, topic, got, want, render(r.ACLs))
					}
				}
			}
			consumes := slices.ContainsFunc(patterns, func(pt string) bool { return declaredAny(cis, c, pt) })
			if got := authorize(r.ACLs, p, Group, c+".ns", Read); got != consumes {
				t.Fatalf("iteration %d: group of %s: allowed=%v, consumes=%v", iter, c, got, consumes)
			}
			for _, other := range clients {
				if other != c && authorize(r.ACLs, p, Group, other+".ns", Read) {
					t.Fatalf("iteration %d: %s may read %s's consumer group", iter, c, other)
				}
			}
		}
	}
}

// declaredAny reports whether the client consumes (or may do all on) the topic pattern.
func declaredAny(cis []v2beta1.ClientIntents, client, pattern string) bool {
	for _, ci := range cis {
		if ci.Spec.Workload.Name != client {
			continue
		}
		for _, t := range ci.Spec.Targets {
			if t.Kafka == nil || t.Kafka.Name != "kafka.kafka" {
				continue
			}
			for _, tp := range t.Kafka.Topics {
				if tp.Name == pattern && (slices.Contains(tp.Operations, "consume") || slices.Contains(tp.Operations, "all")) {
					return true
				}
			}
		}
	}
	return false
}

// Applying a plan and diffing again yields nothing to do; no ACL outside the owned set is
// ever deleted; the broker ends with every desired ACL.
func TestDiffConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	universe := make([]ACL, 40)
	for i := range universe {
		universe[i] = allow(fmt.Sprintf("User:%d", i%7), Topic, Literal, fmt.Sprintf("t%d", i), Write)
	}
	pick := func() Set {
		s := Set{}
		for _, a := range universe {
			if rng.IntN(3) == 0 {
				s.Add(a)
			}
		}
		return s
	}
	for iter := 0; iter < 500; iter++ {
		desired, owned, onBroker := pick(), pick(), pick()
		before := NewSet(onBroker.Sorted()...)
		p := Diff(desired, owned, onBroker)
		for _, a := range p.Delete {
			if !owned.Has(a) {
				t.Fatalf("deletes %v, which is not owned", a)
			}
			delete(onBroker, a)
		}
		for _, a := range p.Create {
			if before.Has(a) {
				t.Fatalf("creates %v, which is already there", a)
			}
			onBroker.Add(a)
		}
		for a := range before {
			if !owned.Has(a) && !onBroker.Has(a) {
				t.Fatalf("foreign %v was removed", a)
			}
		}
		for a := range desired {
			if !onBroker.Has(a) {
				t.Fatalf("desired %v missing after apply", a)
			}
		}
		nowOwned := p.Owned(p.Create, nil)
		if p2 := Diff(desired, nowOwned, onBroker); !p2.Empty() {
			t.Fatalf("second diff not empty: %+v", p2)
		}
	}
}
