package broker_test

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
)

// counter counts the ACL requests a client writes, by request key.
type counter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (c *counter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int16]int{}
	}
	c.n[key]++
}

func (c *counter) get(key kmsg.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[int16(key)]
}

func admin(t *testing.T, b *kafkatest.Broker, hooks ...kgo.Hook) *broker.Client {
	t.Helper()
	mech, err := broker.SASLMechanism(kafkatest.Mechanism, kafkatest.AdminUser, kafkatest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := broker.New(broker.Config{Addr: b.Addr, SASL: mech, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func topicACL(p, topic string, op acl.Operation) acl.ACL {
	return acl.ACL{Principal: p, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: topic, Operation: op, Permission: acl.Allow}
}

// Thousands of ACLs go in a few batched requests, the list returns exactly them, and a
// delete removes exactly the ACLs named, not others of the same principal.
func TestBatchedCreateListDelete(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &counter{}
	cl := admin(t, b, c)
	ctx := context.Background()
	var acls []acl.ACL
	for i := 0; i < 2500; i++ {
		acls = append(acls, topicACL(fmt.Sprintf("User:CN=c%d.ns,O=intentguard", i%100), fmt.Sprintf("topic-%d", i), acl.Write))
	}
	created, err := cl.Create(ctx, acls)
	if err != nil || len(created) != len(acls) {
		t.Fatalf("created %d of %d: %v", len(created), len(acls), err)
	}
	if got := c.get(kmsg.CreateACLs); got != 3 {
		t.Errorf("2500 ACLs took %d create requests, want 3 batches of at most %d", got, broker.DefaultBatch)
	}
	got, err := cl.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(acl.NewSet(acls...)) {
		t.Fatalf("listed %d ACLs, want the %d created", len(got), len(acls))
	}
	if c.get(kmsg.DescribeACLs) != 1 {
		t.Errorf("list took %d requests, want 1", c.get(kmsg.DescribeACLs))
	}
	sameClientOtherOp := topicACL(acls[0].Principal, acls[0].Name, acl.Read)
	if _, err := cl.Create(ctx, []acl.ACL{sameClientOtherOp}); err != nil {
		t.Fatal(err)
	}
	deleted, err := cl.Delete(ctx, acls[:10])
	if err != nil || len(deleted) != 10 {
		t.Fatalf("deleted %d: %v", len(deleted), err)
	}
	got, _ = cl.List(ctx)
	want := acl.NewSet(append(acls[10:], sameClientOtherOp)...)
	if !got.Equal(want) {
		t.Fatalf("after deleting 10: %d ACLs, want %d", len(got), len(want))
	}
}

// The ACLs the adapter writes are the ones the broker enforces for real clients.
func TestACLsAreEnforced(t *testing.T) {
	const alice, bob = "CN=alice.ns,O=intentguard", "CN=bob.ns,O=intentguard"
	b, err := kafkatest.Start(kafkatest.Options{Users: []string{alice, bob}, Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := admin(t, b).Create(ctx, []acl.ACL{topicACL("User:"+alice, "orders", acl.Write)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Produce(ctx, alice, "orders", "x"); err != nil {
		t.Fatalf("alice may write orders: %v", err)
	}
	if err := b.Produce(ctx, bob, "orders", "x"); !isNotAuthorized(err) {
		t.Fatalf("bob must be refused, got %v", err)
	}
}

func isNotAuthorized(err error) bool {
	return kafkatest.Denied(err)
}

// The admin connection works over TLS with a client certificate from PEM material as the
// credentials operator writes it (cert.pem, key.pem, ca.pem), and fails without one.
func TestAdminOverMutualTLS(t *testing.T) {
	pki, err := kafkatest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan pkix.Name, 1)
	serverTLS, err := pki.ServerTLS("kafka.kafka", seen)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := pki.ClientPEM(pkix.Name{CommonName: "intents-operator.intentguard-system", Organization: []string{"intentguard"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := kafkatest.Start(kafkatest.Options{TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mech, _ := broker.SASLMechanism(kafkatest.Mechanism, kafkatest.AdminUser, kafkatest.AdminPassword)

	tc, err := broker.TLSConfig(certPEM, keyPEM, pki.CAPEM, "kafka.kafka")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := broker.New(broker.Config{Addr: b.Addr, TLS: tc, SASL: mech})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.Create(ctx, []acl.ACL{topicACL("User:x", "t", acl.Read)}); err != nil {
		t.Fatalf("create over mTLS: %v", err)
	}
	if got, err := cl.List(ctx); err != nil || len(got) != 1 {
		t.Fatalf("list over mTLS: %v, %d ACLs", err, len(got))
	}
	if subj := <-seen; subj.CommonName != "intents-operator.intentguard-system" {
		t.Fatalf("the broker saw client certificate %q", subj)
	}

	noCert, _ := broker.TLSConfig(nil, nil, pki.CAPEM, "kafka.kafka")
	bad, _ := broker.New(broker.Config{Addr: b.Addr, TLS: noCert, SASL: mech})
	defer bad.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := bad.List(ctx2); err == nil {
		t.Fatal("a connection without a client certificate must fail")
	}
}
