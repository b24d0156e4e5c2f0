package acl

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
)

func intents(t *testing.T, ns, doc string) v2beta1.ClientIntents {
	t.Helper()
	var ci v2beta1.ClientIntents
	if err := yaml.UnmarshalStrict([]byte(doc), &ci); err != nil {
		t.Fatal(err)
	}
	ci.Namespace = ns
	if ci.Name == "" {
		ci.Name = ci.Spec.Workload.Name
	}
	return ci
}

var broker = Server{Ref: intent.Ref{Namespace: "kafka", Name: "kafka"}, Organization: "intentguard"}

func allow(p string, r ResourceType, pat Pattern, name string, op Operation) ACL {
	return ACL{Principal: p, Host: AnyHost, Resource: r, Pattern: pat, Name: name, Operation: op, Permission: Allow}
}

const clientP = "User:CN=client.ns,O=intentguard"

func TestCompileMapping(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		srv  func(Server) Server
		want []ACL
	}{
		{
			name: "tutorial: produce, describe, consume on two topics",
			doc: `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [
  {name: mytopic, operations: [produce, describe, consume]},
  {name: transactions, operations: [produce, describe, consume]}]}}]}`,
			want: []ACL{
				allow(clientP, Topic, Literal, "mytopic", Write), allow(clientP, Topic, Literal, "mytopic", Describe), allow(clientP, Topic, Literal, "mytopic", Read),
				allow(clientP, Topic, Literal, "transactions", Write), allow(clientP, Topic, Literal, "transactions", Describe), allow(clientP, Topic, Literal, "transactions", Read),
				allow(clientP, Group, Literal, "client.ns", Read),
			},
		},
		{
			name: "prefix and wildcard topics; all",
			doc: `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [
  {name: "orders.*", operations: [all]}, {name: "*", operations: [describe]}]}}]}`,
			want: []ACL{
				allow(clientP, Topic, Prefixed, "orders.", All), allow(clientP, Group, Literal, "client.ns", Read),
				allow(clientP, Topic, Literal, "*", Describe),
			},
		},
		{
			name: "cluster operations go to the Cluster resource, not the topic",
			doc: `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [
  {name: t, operations: [IdempotentWrite, ClusterAction, create, alter, delete, DescribeConfigs, AlterConfigs]}]}}]}`,
			want: []ACL{
				allow(clientP, Cluster, Literal, ClusterName, IdempotentWrite), allow(clientP, Cluster, Literal, ClusterName, ClusterAction),
				allow(clientP, Topic, Literal, "t", Create), allow(clientP, Topic, Literal, "t", Alter), allow(clientP, Topic, Literal, "t", Delete),
				allow(clientP, Topic, Literal, "t", DescribeConfigs), allow(clientP, Topic, Literal, "t", AlterConfigs),
			},
		},
		{
			name: "targets of other brokers, and the broker named without namespace from another namespace, are ignored",
			doc: `spec: {workload: {name: client}, targets: [{kafka: {name: other.kafka, topics: [{name: a, operations: [produce]}]}},
  {kafka: {name: kafka, topics: [{name: b, operations: [produce]}]}}, {service: {name: kafka.kafka}}]}`,
		},
		{
			name: "SASL user template and a consumer-group prefix",
			doc:  `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [consume]}]}}]}`,
			srv: func(s Server) Server {
				s.PrincipalTemplate, s.GroupName, s.GroupPrefix = "User:$(workload).$(namespace)", "$(namespace)_$(workload).", true
				return s
			},
			want: []ACL{allow("User:client.ns", Topic, Literal, "a", Read), allow("User:client.ns", Group, Prefixed, "ns_client.", Read)},
		},
		{
			name: "server topic rules: anonymous denied, open topics for everyone",
			doc:  `spec: {workload: {name: client}}`,
			srv: func(s Server) Server {
				f := false
				s.Topics = []v2beta1.KafkaServerTopic{
					{Topic: "*", Pattern: v2beta1.KafkaTopicLiteral, ClientIdentityRequired: true},
					{Topic: "public.", Pattern: v2beta1.KafkaTopicPrefix, IntentsRequired: &f},
				}
				return s
			},
			want: []ACL{
				{Principal: Anonymous, Host: AnyHost, Resource: Topic, Pattern: Literal, Name: "*", Operation: All, Permission: Deny},
				allow(Everyone, Topic, Prefixed, "public.", All),
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := broker
			if c.srv != nil {
				s = c.srv(s)
			}
			ci := intents(t, "ns", c.doc)
			r, err := Compile(s, []v2beta1.ClientIntents{ci})
			if err != nil {
				t.Fatal(err)
			}
			if want := NewSet(c.want...); !r.ACLs.Equal(want) {
				t.Errorf("got\n%s\nwant\n%s", render(r.ACLs), render(want))
			}
		})
	}
}

func render(s Set) string {
	var b strings.Builder
	for _, a := range s.Sorted() {
		b.WriteString("  " + a.String() + "\n")
	}
	return b.String()
}

// A bad topic name in one ClientIntents is reported on it, freezes that client's owned
// ACLs, and leaves every other client's ACLs as compiled.
func TestCompileBadIntentsTouchNothingElse(t *testing.T) {
	good := intents(t, "ns", `spec: {workload: {name: other}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	bad := intents(t, "ns", `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: "a*b", operations: [produce]}, {name: ok, operations: [produce]}]}}]}`)
	bad2 := intents(t, "ns", `metadata: {name: client-more}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: c, operations: [produce]}]}}]}`)
	r, err := Compile(broker, []v2beta1.ClientIntents{good, bad, bad2})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Intents[types.NamespacedName{Namespace: "ns", Name: "client"}]
	if res.Err == nil || !strings.Contains(res.Err.Error(), `"a*b"`) {
		t.Fatalf("want an error naming the bad topic, got %v", res.Err)
	}
	if r.Intents[types.NamespacedName{Namespace: "ns", Name: "other"}].Err != nil {
		t.Fatal("the good intents must compile")
	}
	want := NewSet(allow("User:CN=other.ns,O=intentguard", Topic, Literal, "a", Write))
	if !r.ACLs.Equal(want) {
		t.Fatalf("got\n%s\nwant\n%s", render(r.ACLs), render(want))
	}
	owned := NewSet(allow(clientP, Topic, Literal, "old", Write), allow("User:CN=gone.ns,O=intentguard", Topic, Literal, "x", Read))
	d := r.Desired(owned)
	if !d.Has(allow(clientP, Topic, Literal, "old", Write)) || d.Has(allow("User:CN=gone.ns,O=intentguard", Topic, Literal, "x", Read)) || d.Has(allow(clientP, Topic, Literal, "c", Write)) {
		t.Fatalf("the frozen client keeps exactly its owned ACLs; got\n%s", render(d))
	}
}

func TestCompileRefusesWideningServerConfigs(t *testing.T) {
	for _, tmpl := range []string{"User:*", "User:$(workload)", "User:fixed", "CN=$(dn)"} {
		s := broker
		s.PrincipalTemplate = tmpl
		ci := intents(t, "ns", `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [produce]}]}}]}`)
		r, err := Compile(s, []v2beta1.ClientIntents{ci})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.ACLs) != 0 || r.Intents[types.NamespacedName{Namespace: "ns", Name: "client"}].Err == nil {
			t.Errorf("template %q: want an error and no ACLs, got\n%s", tmpl, render(r.ACLs))
		}
	}
	s := broker
	s.Topics = []v2beta1.KafkaServerTopic{{Topic: "bad topic"}}
	if _, err := Compile(s, nil); err == nil {
		t.Error("a bad server topic rule must fail the whole compile")
	}
}

func TestCompileSkipsDeletedIntents(t *testing.T) {
	ci := intents(t, "ns", `spec: {workload: {name: client}, targets: [{kafka: {name: kafka.kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	now := metav1.Now()
	ci.DeletionTimestamp = &now
	r, _ := Compile(broker, []v2beta1.ClientIntents{ci})
	if len(r.ACLs) != 0 {
		t.Fatalf("intents being deleted contribute nothing, got\n%s", render(r.ACLs))
	}
}

func TestDiffOnlyDeletesOwned(t *testing.T) {
	a := allow(clientP, Topic, Literal, "a", Write)
	b := allow(clientP, Topic, Literal, "b", Write)
	c := allow(clientP, Topic, Literal, "c", Write)
	hand := allow(clientP, Topic, Literal, "hand", Read)
	// a: owned, desired, on broker -> keep. b: owned, no longer desired -> delete.
	// c: desired, missing (the broker lost it) -> create. hand: foreign -> untouched, even
	// though it is not desired and has the client's principal. d: desired and already there
	// by hand -> not created, not owned.
	d := allow(clientP, Topic, Literal, "d", Write)
	p := Diff(NewSet(a, c, d), NewSet(a, b, c), NewSet(a, b, hand, d))
	if len(p.Create) != 1 || p.Create[0] != c {
		t.Errorf("create = %v, want [%v]", p.Create, c)
	}
	if len(p.Delete) != 1 || p.Delete[0] != b {
		t.Errorf("delete = %v, want [%v]", p.Delete, b)
	}
	if p.Foreign != 2 {
		t.Errorf("foreign = %d, want 2", p.Foreign)
	}
	if got := p.Owned(p.Create, nil); !got.Equal(NewSet(a, c)) {
		t.Errorf("owned after = %v", got.Sorted())
	}
	// Once d is wanted no more, it is still not ours to delete.
	if p2 := Diff(NewSet(a, c), NewSet(a, c), NewSet(a, c, d, hand)); !p2.Empty() {
		t.Errorf("foreign ACLs must never be deleted: %+v", p2)
	}
}
