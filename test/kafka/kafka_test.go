package kafka_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// The public Kafka mTLS tutorial: broker kafka in namespace kafka, a KafkaServerConfig, a
// ProtectedService for the broker, and ClientIntents for client on mytopic and
// transactions. client produces and consumes; client-other is not authorized. The
// operator runs in shadow mode, so the ProtectedService is what turns enforcement on.
func TestTutorialKafka(t *testing.T) {
	const appNS = "otterize-tutorial-kafka-mtls"
	client, other := user(appNS, "client"), user(appNS, "client-other")
	b := startBroker(t, kafkatest.Options{Users: []string{client, other}, Topics: []string{"mytopic", "transactions"}})
	env.Namespace(t, "kafka")
	env.Namespace(t, appNS)
	op := startOperator(t, enforcement.Options{Shadow: true})

	ksc := brokerConfig(t, "kafka", "kafka", b, "")
	ci := env.ApplyIntents(t, appNS, `
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kafka:
      name: kafka.kafka
      topics:
      - {name: mytopic, operations: [produce, describe, consume]}
      - {name: transactions, operations: [produce, describe, consume]}`)
	waitState(t, op, ci, enforcement.Shadow)
	if n := len(brokerACLs(t, b)); n != 0 {
		t.Fatalf("shadow mode wrote %d ACLs", n)
	}
	assertPredicted(t, predict(t, enforcement.Options{Shadow: true}, "kafka", appNS), brokerACLs(t, b))

	ps := &v2beta1.ProtectedService{}
	decode(t, `{metadata: {name: kafka, namespace: kafka}, spec: {name: kafka}}`, ps)
	env.Create(t, ps)
	waitState(t, op, ci, enforcement.Enforced)

	group := "client." + appNS
	predicted := predict(t, enforcement.Options{Shadow: true}, "kafka", appNS)
	assertPredicted(t, predicted, brokerACLs(t, b))
	for _, topic := range []string{"mytopic", "transactions"} {
		mustProduce(t, b, client, topic, "hello "+topic)
		mustConsume(t, b, client, topic, group, "hello "+topic)
		mustNotProduce(t, b, other, topic)
		mustNotConsume(t, b, other, topic, "client-other."+appNS)
		for op, allowed := range map[string]bool{"produce": true, "consume": true, "delete": false} {
			assertExplained(t, predicted, "client."+appNS, "kafka.kafka", topic, op, allowed)
			assertExplained(t, predicted, "client-other."+appNS, "kafka.kafka", topic, op, false)
		}
	}
	// The consumer group is part of what consume allows: not any group.
	mustNotConsume(t, b, client, "mytopic", "someone-elses-group")
	st := getKSC(t, ksc).Status
	if !st.Enforced || st.DesiredACLs != 7 || st.OwnedACLs != 7 || !apimeta.IsStatusConditionTrue(st.Conditions, kafka.ConditionACLsInSync) ||
		!apimeta.IsStatusConditionTrue(st.Conditions, kafka.ConditionConnected) {
		t.Fatalf("status does not say that 7 ACLs are enforced: %+v", st)
	}

	// Without the ProtectedService the broker is back in shadow mode: the operator's ACLs
	// go, and status says nothing is enforced.
	if err := kube.Delete(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	waitState(t, op, ci, enforcement.Shadow)
	if n := len(brokerACLs(t, b)); n != 0 {
		t.Fatalf("shadow mode left %d ACLs", n)
	}
	if st := getKSC(t, ksc).Status; st.Enforced || st.OwnedACLs != 0 {
		t.Fatalf("status must say nothing is enforced: %+v", st)
	}
}

// An intent added is allowed; an intent removed is denied again; deleting the
// ClientIntents removes its ACLs; ACLs made by hand, even for the same principal and even
// identical to a declared one, survive every reconcile and the KafkaServerConfig's
// deletion.
func TestIntentLifecycleKeepsHandMadeACLs(t *testing.T) {
	ns := env.Namespace(t, "kafka-lifecycle")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a", "b", "manual"}})
	op := startOperator(t, enforcement.Options{})

	pc := "User:" + c
	handPrincipal := acl.ACL{Principal: pc, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: "manual", Operation: acl.Write, Permission: acl.Allow}
	handIdentical := acl.ACL{Principal: pc, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: "b", Operation: acl.Write, Permission: acl.Allow}
	handOther := acl.ACL{Principal: "User:someone", Host: "*", Resource: acl.Topic, Pattern: acl.Prefixed, Name: "", Operation: acl.All, Permission: acl.Allow}
	handMade(t, b, handPrincipal, handIdentical, handOther)

	ksc := brokerConfig(t, ns, "kafka", b, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kafka: {name: kafka, topics: [{name: a, operations: [produce]}, {name: b, operations: [produce]}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	mustProduce(t, b, c, "a", "1")
	mustProduce(t, b, c, "b", "1")
	mustProduce(t, b, c, "manual", "1")
	if st := getKSC(t, ksc).Status; st.OwnedACLs != 1 || st.ForeignACLs != 3 {
		t.Fatalf("the identical hand-made ACL must stay foreign: owned %d, foreign %d", st.OwnedACLs, st.ForeignACLs)
	}

	updateIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: b, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	mustNotProduce(t, b, c, "a")
	mustProduce(t, b, c, "b", "2")

	// Several resyncs pass (the period is one second); nothing hand-made moves.
	time.Sleep(2500 * time.Millisecond)
	got := brokerACLs(t, b)
	for _, a := range []acl.ACL{handPrincipal, handIdentical, handOther} {
		if !got.Has(a) {
			t.Fatalf("hand-made %s was removed", a)
		}
	}

	if err := kube.Delete(context.Background(), ci); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the intents' ACLs to go", 30*time.Second, func() (bool, error) {
		return getKSC(t, ksc).Status.OwnedACLs == 0 && getKSC(t, ksc).Status.ObservedGeneration > 0, nil
	})
	mustNotProduce(t, b, c, "a")

	// Intents again, then the KafkaServerConfig goes: its ACLs go, hand-made ones stay.
	ci = env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	mustProduce(t, b, c, "a", "3")
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "KafkaServerConfig deleted", 30*time.Second, gone(ksc))
	if got := brokerACLs(t, b); !got.Equal(acl.NewSet(handPrincipal, handIdentical, handOther)) {
		t.Fatalf("after deleting the KafkaServerConfig the broker holds\n%v\nwant only the hand-made ACLs", got.Sorted())
	}
	mustNotProduce(t, b, c, "a")
}

// Intents written before their broker's KafkaServerConfig exists are enforced once it
// appears; a broker that lost its ACLs gets them back; a broker restarted from its data
// directory, and an operator restarted while intents changed, end in the right set.
func TestLevelTriggered(t *testing.T) {
	ns := env.Namespace(t, "kafka-level")
	c := user(ns, "client")
	dir := t.TempDir()
	opts := kafkatest.Options{Users: []string{c}, Topics: []string{"a", "b"}}
	opts.DataDir = dir
	b := startBroker(t, opts)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}, {name: b, operations: [produce]}]}}]}`)
	op := startOperator(t, enforcement.Options{})
	ksc := brokerConfig(t, ns, "kafka", b, "")
	waitState(t, op, ci, enforcement.Enforced)
	mustProduce(t, b, c, "a", "1")

	// The broker loses every ACL (a wiped ZooKeeper/KRaft metadata, say).
	admin := adminClient(t, b)
	all := brokerACLs(t, b)
	if _, err := admin.Delete(context.Background(), all.Sorted()); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	suite.WaitFor(t, "the lost ACLs to come back", 30*time.Second, func() (bool, error) { return brokerACLs(t, b).Equal(all), nil })
	mustProduce(t, b, c, "a", "2")

	// The broker goes down; the operator says so and retries.
	port := portOf(t, b.Addr)
	b.Close()
	suite.WaitFor(t, "Connected=False", 60*time.Second, func() (bool, error) {
		return apimeta.IsStatusConditionFalse(getKSC(t, ksc).Status.Conditions, kafka.ConditionConnected), nil
	})
	updateIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: b, operations: [produce]}]}}]}`)
	states := waitState(t, op, ci, enforcement.Waiting)
	t.Logf("while the broker is down: %s", states[0].Message)

	// It comes back from its data directory, on the same address.
	opts.Port = port
	b2 := startBroker(t, opts)
	waitState(t, op, ci, enforcement.Enforced)
	mustNotProduce(t, b2, c, "a")
	mustProduce(t, b2, c, "b", "3")

	// The operator stops; the intents change; a new operator removes the ACL the first one
	// created, knowing it from the owned set it recorded.
	op.stop()
	updateIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	op2 := startOperator(t, enforcement.Options{})
	waitState(t, op2, ci, enforcement.Enforced)
	mustProduce(t, b2, c, "a", "4")
	mustNotProduce(t, b2, c, "b")
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Prefix topics, wildcard topics and many clients: each client reaches its own topics
// and its prefix, and nothing of the others.
func TestPrefixesAndManyClients(t *testing.T) {
	ns := env.Namespace(t, "kafka-many")
	const n = 25
	var users []string
	var topics []string
	for i := 0; i < n; i++ {
		users = append(users, user(ns, fmt.Sprintf("svc-%d", i)))
		topics = append(topics, fmt.Sprintf("own-%d", i), fmt.Sprintf("events.svc-%d.log", i))
	}
	reader := user(ns, "auditor")
	b := startBroker(t, kafkatest.Options{Users: append(users, reader), Topics: append(topics, "shared")})
	op := startOperator(t, enforcement.Options{})
	brokerConfig(t, ns, "kafka", b, "")
	var cis []*v2beta1.ClientIntents
	for i := 0; i < n; i++ {
		cis = append(cis, env.ApplyIntents(t, ns, fmt.Sprintf(`
metadata: {name: svc-%d}
spec: {workload: {name: svc-%d}, targets: [{kafka: {name: kafka, topics: [
  {name: own-%d, operations: [produce, consume]}, {name: "events.svc-%d.*", operations: [produce]}]}}]}`, i, i, i, i)))
	}
	audit := env.ApplyIntents(t, ns, `
metadata: {name: auditor}
spec: {workload: {name: auditor}, targets: [{kafka: {name: kafka, topics: [{name: "*", operations: [describe]}]}}]}`)
	for _, ci := range append(cis, audit) {
		waitState(t, op, ci, enforcement.Enforced)
	}
	for i := 0; i < n; i++ {
		u := users[i]
		mustProduce(t, b, u, fmt.Sprintf("own-%d", i), "x")
		mustProduce(t, b, u, fmt.Sprintf("events.svc-%d.log", i), "x")
		j := (i + 1) % n
		mustNotProduce(t, b, u, fmt.Sprintf("own-%d", j))
		mustNotProduce(t, b, u, fmt.Sprintf("events.svc-%d.log", j))
		mustNotProduce(t, b, u, "shared")
	}
	mustConsume(t, b, users[3], "own-3", "svc-3."+ns, "x")
	mustNotProduce(t, b, reader, "shared")
	got := brokerACLs(t, b)
	predicted := predict(t, enforcement.Options{}, ns)
	assertPredicted(t, predicted, got)
	assertExplained(t, predicted, "svc-1."+ns, "kafka."+ns, "events.svc-1.log", "produce", true)
	assertExplained(t, predicted, "svc-1."+ns, "kafka."+ns, "events.svc-2.log", "produce", false)
	assertExplained(t, predicted, "auditor."+ns, "kafka."+ns, "own-7", "describe", true)
	assertExplained(t, predicted, "auditor."+ns, "kafka."+ns, "shared", "produce", false)
	// Per client: Write+Read own, Write on the prefix, Read on its group; the auditor's
	// Describe on every topic.
	if len(got) != 4*n+1 {
		t.Fatalf("broker holds %d ACLs, want %d", len(got), 4*n+1)
	}
	if !got.Has(acl.ACL{Principal: "User:" + users[0], Host: "*", Resource: acl.Topic, Pattern: acl.Prefixed, Name: "events.svc-0.", Operation: acl.Write, Permission: acl.Allow}) {
		t.Fatal("the prefix ACL is missing")
	}
}

// An invalid topic name in one ClientIntents (stored before admission checked topics) is
// reported on it, keeps that client's
// existing ACLs as they are, and does not hold back any other client.
func TestBadIntentsTouchNothingElse(t *testing.T) {
	ns := env.Namespace(t, "kafka-bad")
	c, o := user(ns, "client"), user(ns, "other")
	b := startBroker(t, kafkatest.Options{Users: []string{c, o}, Topics: []string{"a", "b"}})
	op := startOperator(t, enforcement.Options{})
	brokerConfig(t, ns, "kafka", b, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	// Admission refuses this topic now; an object stored before it did is reported.
	storeIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: "b/../*", operations: [all]}, {name: b, operations: [produce]}]}}]}`)
	states := waitState(t, op, ci, enforcement.Failed)
	if got := states[0].Message; !containsAll(got, `"b/../*"`, "not a Kafka topic name") {
		t.Fatalf("the message must name the bad topic: %q", got)
	}
	oi := env.ApplyIntents(t, ns, `
metadata: {name: other}
spec: {workload: {name: other}, targets: [{kafka: {name: kafka, topics: [{name: b, operations: [produce]}]}}]}`)
	waitState(t, op, oi, enforcement.Enforced)
	mustProduce(t, b, o, "b", "x")
	mustProduce(t, b, c, "a", "kept")
	mustNotProduce(t, b, c, "b")
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Deleting a KafkaServerConfig whose broker is gone waits, says why, and lets go when
// forced; a later config for the same broker does not claim what the first one left.
func TestDeleteWithBrokerGone(t *testing.T) {
	ns := env.Namespace(t, "kafka-gone")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}})
	op := startOperator(t, enforcement.Options{})
	ksc := brokerConfig(t, ns, "kafka", b, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	b.Close()
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "status to say deletion waits for the broker", 30*time.Second, func() (bool, error) {
		st := getKSC(t, ksc).Status
		cond := apimeta.FindStatusCondition(st.Conditions, kafka.ConditionACLsInSync)
		return cond != nil && strings.Contains(cond.Message, kafka.ForceDeleteAnnotation), nil
	})
	cur := getKSC(t, ksc)
	patch := client.MergeFrom(cur.DeepCopy())
	metav1.SetMetaDataAnnotation(&cur.ObjectMeta, kafka.ForceDeleteAnnotation, "true")
	if err := kube.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "forced deletion", 30*time.Second, gone(ksc))
}

// What a change costs the broker: bulk creation in batches, one edited ClientIntents one
// create and one delete request carrying only the difference, an idle resync and an
// operator restart only list requests.
func TestRequestCost(t *testing.T) {
	ns := env.Namespace(t, "kafka-cost")
	b := startBroker(t, kafkatest.Options{})
	reqs := b.CountRequests()
	const n = 300 // 5 ACLs each: 1,500 ACLs, two create batches
	var cis []*v2beta1.ClientIntents
	for i := 0; i < n; i++ {
		cis = append(cis, env.ApplyIntents(t, ns, fmt.Sprintf(`
metadata: {name: c%d}
spec: {workload: {name: c%d}, targets: [{kafka: {name: kafka, topics: [
  {name: in-%d, operations: [consume, produce]}, {name: out-%d, operations: [produce, describe]}]}}]}`, i, i, i, i)))
	}
	op := startOperator(t, enforcement.Options{})
	ksc := brokerConfig(t, ns, "kafka", b, "")
	suite.WaitFor(t, "1,500 ACLs", 60*time.Second, func() (bool, error) {
		st := getKSC(t, ksc).Status
		return st.OwnedACLs == 5*n && apimeta.IsStatusConditionTrue(st.Conditions, kafka.ConditionACLsInSync), nil
	})
	if c := reqs.Take(); c.Create != 2 || c.CreatedCarried != 5*n || c.Delete != 0 {
		t.Fatalf("bulk creation: %s; want 2 create requests carrying %d ACLs", c, 5*n)
	}

	time.Sleep(2500 * time.Millisecond) // two resyncs or more
	if c := reqs.Take(); c.Describe < 1 || c.Create+c.Delete != 0 {
		t.Fatalf("idle resync: %s; want only list requests", c)
	}

	updateIntents(t, cis[7], `{workload: {name: c7}, targets: [{kafka: {name: kafka, topics: [
  {name: in-7, operations: [consume, produce]}, {name: renamed-7, operations: [produce, describe]}]}}]}`)
	waitState(t, op, cis[7], enforcement.Enforced)
	if c := reqs.Take(); c.Create != 1 || c.CreatedCarried != 2 || c.Delete != 1 || c.DeletedCarried != 2 {
		t.Fatalf("one edit: %s; want 1 create and 1 delete request of 2 ACLs each", c)
	}

	op.stop()
	reqs.Take()
	op2 := startOperator(t, enforcement.Options{})
	waitState(t, op2, cis[7], enforcement.Enforced)
	time.Sleep(1500 * time.Millisecond)
	if c := reqs.Take(); c.Describe < 1 || c.Create+c.Delete != 0 {
		t.Fatalf("operator restart without change: %s; want only list requests", c)
	}
}

// Pointing a KafkaServerConfig at another Kafka cluster does not make the ACLs of the new
// cluster its own, even identical ones; the old cluster keeps what was created there.
func TestAddressMovesToAnotherCluster(t *testing.T) {
	ns := env.Namespace(t, "kafka-move")
	c := user(ns, "client")
	first := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}, ClusterID: "first"})
	second := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}, ClusterID: "second"})
	declared := acl.ACL{Principal: "User:" + c, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: "a", Operation: acl.Write, Permission: acl.Allow}
	op := startOperator(t, enforcement.Options{})
	ksc := brokerConfig(t, ns, "kafka", first, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	// The second cluster's administrator made the same ACL by hand.
	handMade(t, second, declared)

	var cur *v2beta1.KafkaServerConfig
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur = getKSC(t, ksc)
		cur.Spec.Addr = second.Addr
		return kube.Update(context.Background(), cur)
	}); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the config to reach the second cluster", 30*time.Second, func() (bool, error) {
		st := getKSC(t, ksc).Status
		return st.ObservedGeneration == cur.Generation && st.ForeignACLs == 1 && st.OwnedACLs == 0, nil
	})
	// On the second cluster the operator does create and delete what it owns: a new
	// topic's ACL comes and goes with the intents, and the hand-made one stays.
	onB := declared
	onB.Name = "b"
	updateIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}, {name: b, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	if got := brokerACLs(t, second); !got.Equal(acl.NewSet(declared, onB)) {
		t.Fatalf("the second cluster holds %v, want the hand-made ACL and the new one", got.Sorted())
	}
	if st := getKSC(t, ksc).Status; st.OwnedACLs != 1 || st.ForeignACLs != 1 {
		t.Fatalf("on the second cluster: owned %d, foreign %d; want the new ACL owned, the hand-made one foreign", st.OwnedACLs, st.ForeignACLs)
	}
	if err := kube.Delete(context.Background(), ci); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the owned ACL to leave the second cluster", 30*time.Second, func() (bool, error) {
		if got := brokerACLs(t, second); got.Has(onB) {
			return false, fmt.Errorf("second cluster holds %v", got.Sorted())
		}
		return true, nil
	})
	suite.WaitFor(t, "the config to report the emptied intents", 30*time.Second, func() (bool, error) {
		st := getKSC(t, ksc).Status
		return st.DesiredACLs == 0 && st.OwnedACLs == 0 && apimeta.IsStatusConditionTrue(st.Conditions, kafka.ConditionACLsInSync), nil
	})
	if got := brokerACLs(t, second); !got.Equal(acl.NewSet(declared)) {
		t.Fatalf("the hand-made ACL on the second cluster: broker holds %v", got.Sorted())
	}
	if got := brokerACLs(t, first); !got.Equal(acl.NewSet(declared)) {
		t.Fatalf("the first cluster's ACL was expected to stay (the config no longer reaches it); it holds %v", got.Sorted())
	}
}

// A deleted KafkaServerConfig whose broker stays away is let go after the delete timeout,
// without anyone forcing it.
func TestDeleteTimesOut(t *testing.T) {
	ns := env.Namespace(t, "kafka-timeout")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}})
	op := startOperator(t, enforcement.Options{}, func(o *kafka.Options) { o.DeleteTimeout = 4 * time.Second })
	ksc := brokerConfig(t, ns, "kafka", b, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	b.Close()
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	// The deletion timestamp has a one-second resolution: a second in, the config must
	// still be waiting for its broker, and say so.
	time.Sleep(time.Second)
	cond := apimeta.FindStatusCondition(getKSC(t, ksc).Status.Conditions, kafka.ConditionACLsInSync)
	if cond == nil || !strings.Contains(cond.Message, "before deletion") {
		t.Fatalf("a second after deletion the config must wait for the broker, status: %+v", cond)
	}
	suite.WaitFor(t, "the deletion to give up", 30*time.Second, gone(ksc))
}

// A change reaches only the broker it concerns: editing intents for one broker sends
// nothing at all to another.
func TestChangeTouchesOnlyItsBroker(t *testing.T) {
	ns := env.Namespace(t, "kafka-two")
	c := user(ns, "client")
	a := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"left", "right"}, ClusterID: "a"})
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"left"}, ClusterID: "b"})
	reqsA, reqsB := a.CountRequests(), b.CountRequests()
	op := startOperator(t, enforcement.Options{}, func(o *kafka.Options) { o.ResyncPeriod = time.Hour })
	brokerConfig(t, ns, "kafka-a", a, "")
	brokerConfig(t, ns, "kafka-b", b, "")
	toA := env.ApplyIntents(t, ns, `
metadata: {name: client-a}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka-a, topics: [{name: left, operations: [produce]}]}}]}`)
	toB := env.ApplyIntents(t, ns, `
metadata: {name: client-b}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka-b, topics: [{name: left, operations: [produce]}]}}]}`)
	waitState(t, op, toA, enforcement.Enforced)
	waitState(t, op, toB, enforcement.Enforced)
	time.Sleep(500 * time.Millisecond)
	reqsA.Take()
	reqsB.Take()

	updateIntents(t, toA, `{workload: {name: client}, targets: [{kafka: {name: kafka-a, topics: [{name: right, operations: [produce]}]}}]}`)
	waitState(t, op, toA, enforcement.Enforced)
	time.Sleep(500 * time.Millisecond)
	if got := reqsA.Take(); got.Create != 1 || got.Delete != 1 {
		t.Fatalf("broker a: %s; want one create and one delete", got)
	}
	if got := reqsB.Take(); got != (kafkatest.Counts{}) {
		t.Fatalf("broker b received %s for a change that is not its own", got)
	}
	mustProduce(t, a, c, "right", "1")
	mustNotProduce(t, a, c, "left")
	mustProduce(t, b, c, "left", "1")
}

// The ClientIntents status reports the Kafka point beside the NetworkPolicy one, per
// target, when the operator runs with Kafka ACLs on (as it does by default).
func TestClientIntentsStatusReportsKafka(t *testing.T) {
	const appNS = "status-kafka"
	clientUser := user(appNS, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{clientUser}, Topics: []string{"orders"}})
	env.Namespace(t, "broker-status")
	env.Namespace(t, appNS)
	env.RunOperator(t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		return operator.New(ctx, local.Config, operator.Config{MetricsAddr: "0", ProbeAddr: "0", InProcess: true,
			KafkaACLs: true, Kafka: kafka.Options{ResyncPeriod: time.Second, MaxBackoff: time.Second, DeleteTimeout: time.Hour, RecordNamespace: recordNS}})
	})
	brokerConfig(t, "broker-status", "kafka", b, "")
	ci := env.ApplyIntents(t, appNS, `
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: client}
spec:
  workload: {name: client}
  targets:
  - kafka: {name: kafka.broker-status, topics: [{name: orders, operations: [produce]}]}`)
	suite.WaitFor(t, "the KafkaACL point Enforced in the ClientIntents status", 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		for _, st := range got.Status.Targets {
			if st.Point == kafka.PointName && st.Target == "kafka kafka.broker-status" && st.State == string(enforcement.Enforced) {
				return true, nil
			}
		}
		return false, fmt.Errorf("no KafkaACL entry in %+v", got.Status.Targets)
	})
	mustProduce(t, b, clientUser, "orders", "hello")
}
