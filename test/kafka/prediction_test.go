package kafka_test

import (
	"context"
	"testing"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
)

// predict reads the namespaces as `intentguard` reads a cluster and runs its analysis
// with the operator's settings.
func predict(t *testing.T, enf enforcement.Options, namespaces ...string) *analysis.Result {
	t.Helper()
	ctx := context.Background()
	objs, err := (&input.Live{Config: local.Config, Namespaces: namespaces}).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New(objs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := analysis.Analyze(ctx, snap, analysis.Options{Enforcement: enf})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// predictedACLs are the ACLs the analysis says the operator holds on every broker.
func predictedACLs(r *analysis.Result) acl.Set {
	out := acl.Set{}
	for _, b := range r.Brokers {
		for _, a := range b.ACLs {
			out.Add(a)
		}
	}
	return out
}

// assertPredicted fails the test unless the ACLs the analysis predicts are those on the
// broker.
func assertPredicted(t *testing.T, r *analysis.Result, onBroker acl.Set) {
	t.Helper()
	if want := predictedACLs(r); !want.Equal(onBroker) {
		t.Fatalf("intentguard predicts the ACLs\n%v\nthe broker holds\n%v", want.Sorted(), onBroker.Sorted())
	}
}

// assertExplained fails the test unless explain's verdict on a Kafka call is the one
// the broker gave.
func assertExplained(t *testing.T, r *analysis.Result, from, to, topic, op string, allowed bool) {
	t.Helper()
	f, err := analysis.ParseEndpoint(from)
	if err != nil {
		t.Fatal(err)
	}
	b, err := analysis.ParseEndpoint(to)
	if err != nil {
		t.Fatal(err)
	}
	es, err := r.Explain(analysis.Query{From: f, To: b, Topic: topic, Operation: op})
	if err != nil {
		t.Fatal(err)
	}
	want := analysis.Denied
	if allowed {
		want = analysis.Allowed
	}
	if es[0].Verdict != want {
		t.Fatalf("explain %s -> %s %s %s: %s (%v, missing %v); the broker said allowed=%v", from, to, topic, op, es[0].Verdict, es[0].Chain, es[0].Missing, allowed)
	}
}
