package kafka_test

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// The API server refuses KafkaServerConfigs that would widen access or cannot work, with
// a message that says why, and fills the upstream-compatible defaults.
func TestConfigValidation(t *testing.T) {
	ns := env.Namespace(t, "kafka-validation")
	bad := map[string]string{
		"wildcard principal":   `{workload: {name: k}, addr: "k:9092", principal: {template: "User:*"}}`,
		"shared principal":     `{workload: {name: k}, addr: "k:9092", principal: {template: "User:$(workload)"}}`,
		"not a User principal": `{workload: {name: k}, addr: "k:9092", principal: {template: "Group:$(dn)"}}`,
		"address without port": `{workload: {name: k}, addr: "kafka.kafka"}`,
		"bad topic rule":       `{workload: {name: k}, addr: "k:9092", topics: [{topic: "a b"}]}`,
		"unknown pattern":      `{workload: {name: k}, addr: "k:9092", topics: [{topic: "a", pattern: regex}]}`,
		"unknown mechanism":    `{workload: {name: k}, addr: "k:9092", sasl: {mechanism: GSSAPI, secretName: s}}`,
		// A template whose placeholders only namespace characters separate: namespace a-b
		// with workload c, and namespace a with workload b-c, would share a principal.
		"ambiguous template":         `{workload: {name: k}, addr: "k:9092", principal: {template: "User:$(namespace)-$(workload)"}}`,
		"adjacent placeholders":      `{workload: {name: k}, addr: "k:9092", principal: {template: "User:$(workload)$(namespace)"}}`,
		"placeholder twice":          `{workload: {name: k}, addr: "k:9092", principal: {template: "User:$(workload).$(namespace).$(workload)"}}`,
		"organization over 64":       `{workload: {name: k}, addr: "k:9092", principal: {organization: "` + strings.Repeat("o", 65) + `"}}`,
		"address with a path":        `{workload: {name: k}, addr: "k/x:9092"}`,
		"address with credentials":   `{workload: {name: k}, addr: "user@k:9092"}`,
		"port out of range":          `{workload: {name: k}, addr: "k:70000"}`,
		"port zero":                  `{workload: {name: k}, addr: "k:0"}`,
		"two addresses":              `{workload: {name: k}, addr: "a:9092,b:9092"}`,
		"secret name not DNS":        `{workload: {name: k}, addr: "k:9092", tls: {secretName: "../admin"}}`,
		"SASL secret name uppercase": `{workload: {name: k}, addr: "k:9092", sasl: {mechanism: PLAIN, secretName: Admin}}`,
		"secret key with a slash":    `{workload: {name: k}, addr: "k:9092", tls: {secretName: s, keyKey: "a/b"}}`,
		"SASL key with a space":      `{workload: {name: k}, addr: "k:9092", sasl: {mechanism: PLAIN, secretName: s, passwordKey: "pass word"}}`,
		"relative TLS file":          `{workload: {name: k}, addr: "k:9092", tls: {certFile: "cert.pem"}}`,
		"TLS file escaping its dir":  `{workload: {name: k}, addr: "k:9092", tls: {keyFile: "/etc/kafka/../../var/run/secrets/token"}}`,
		"server name with a space":   `{workload: {name: k}, addr: "k:9092", tls: {serverName: "a b"}}`,
		"topic named dot":            `{workload: {name: k}, addr: "k:9092", topics: [{topic: "."}]}`,
		"topic named dot dot":        `{workload: {name: k}, addr: "k:9092", topics: [{topic: "..", pattern: literal}]}`,
		"topic * as a prefix":        `{workload: {name: k}, addr: "k:9092", topics: [{topic: "*", pattern: prefix}]}`,
		"topic over 249":             `{workload: {name: k}, addr: "k:9092", topics: [{topic: "` + strings.Repeat("t", 250) + `"}]}`,
		"group with a star":          `{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "team-*"}}`,
		// As a prefix, web.shop would cover web.shop-eu, the group of web in shop-eu.
		"group prefix open at its end": `{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "$(workload).$(namespace)", pattern: prefix}}`,
		"ambiguous group":              `{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "$(namespace)-$(workload)"}}`,
		"group of the workload alone":  `{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "$(workload)"}}`,
	}
	i := 0
	for name, spec := range bad {
		i++
		ksc := &v2beta1.KafkaServerConfig{}
		decode(t, fmt.Sprintf(`{metadata: {name: bad-%d, namespace: %s}, spec: %s}`, i, ns, spec), ksc)
		err := kube.Create(context.Background(), ksc)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	// A control character in the organization (which YAML cannot carry).
	ctl := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`{metadata: {name: bad-ctl, namespace: %s}, spec: {workload: {name: k}, addr: "k:9092"}}`, ns), ctl)
	ctl.Spec.Principal.Organization = "a\x01b"
	if err := kube.Create(context.Background(), ctl); err == nil {
		t.Error("an organization with a control character was accepted")
	}
	goodSpecs := []string{
		`{workload: {name: k}, addr: "10.0.0.1:9093", principal: {template: "User:$(namespace)/$(workload)"}}`,
		`{workload: {name: k}, addr: "[fd00::1]:9093", principal: {template: "User:$(workload)@$(namespace).svc"}}`,
		`{workload: {name: k}, addr: "k:9092", principal: {template: "User:spiffe://example.org/ns/$(namespace)/sa/$(workload)"}}`,
		`{workload: {name: k}, addr: "k:9092", principal: {template: "User:CN=$(dn)-$(workload)"}, topics: [{topic: ".", pattern: prefix}]}`,
		`{workload: {name: k}, addr: "k:9092", principal: {organization: "Société Générale, \"Paris\""}, consumerGroup: {name: "*"}}`,
		`{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "$(workload).$(namespace).", pattern: prefix}}`,
		`{workload: {name: k}, addr: "k:9092", consumerGroup: {name: "team_$(namespace):$(workload)"}}`,
		`{workload: {name: k}, addr: "k:9092", tls: {secretName: kafka.admin-tls, certKey: tls.crt, keyKey: tls.key, caKey: ca_bundle.pem, certFile: /etc/kafka/cert.pem, serverName: kafka-0.kafka.svc}}`,
	}
	for i, spec := range goodSpecs {
		ksc := &v2beta1.KafkaServerConfig{}
		decode(t, fmt.Sprintf(`{metadata: {name: good-%d, namespace: %s}, spec: %s}`, i, ns, spec), ksc)
		if err := kube.Create(context.Background(), ksc); err != nil {
			t.Errorf("refused %s: %v", spec, err)
		}
	}
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`{metadata: {name: good, namespace: %s}, spec: {workload: {name: kafka}, addr: "kafka.kafka:9092", tls: {secretName: s}, topics: [{topic: "*", clientIdentityRequired: true}]}}`, ns), ksc)
	env.Create(t, ksc)
	got := getKSC(t, ksc).Spec
	if got.Principal.Template != "User:$(dn)" || got.Principal.Organization != "intentguard" || got.ConsumerGroup.Name != "$(workload).$(namespace)" ||
		got.TLS.CertKey != "cert.pem" || got.TLS.KeyKey != "key.pem" || got.TLS.CAKey != "ca.pem" ||
		got.Topics[0].Pattern != v2beta1.KafkaTopicLiteral || got.Topics[0].IntentsRequired == nil || !*got.Topics[0].IntentsRequired {
		t.Fatalf("defaults not filled as documented: %+v", got)
	}
}

// The operator reaches a broker over mutual TLS with the certificate, key and CA from a
// Secret in the layout the credentials operator writes, authenticating with SCRAM.
func TestTLSFromSecret(t *testing.T) {
	ns := env.Namespace(t, "kafka-tls")
	pki, err := kafkatest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan pkix.Name, 1)
	serverTLS, err := pki.ServerTLS("localhost", seen)
	if err != nil {
		t.Fatal(err)
	}
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{TLS: serverTLS, AdminMechanism: "SCRAM-SHA-512", Users: []string{c}, Topics: []string{"a"}})
	certPEM, keyPEM, err := pki.ClientPEM(pkix.Name{CommonName: "intents-operator.intentguard-system", Organization: []string{"intentguard"}})
	if err != nil {
		t.Fatal(err)
	}
	env.Create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "operator-tls", Labels: optIn}, Data: map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "ca.pem": pki.CAPEM}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin", Labels: optIn}, StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword}},
	)
	op := startOperator(t, enforcement.Options{})
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`
metadata: {name: kafka, namespace: %s}
spec:
  workload: {name: kafka}
  addr: %q
  tls: {secretName: operator-tls, serverName: localhost}
  sasl: {mechanism: SCRAM-SHA-512, secretName: admin}`, ns, b.Addr), ksc)
	env.Create(t, ksc)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	if subj := <-seen; subj.CommonName != "intents-operator.intentguard-system" {
		t.Fatalf("the broker saw client certificate %v", subj)
	}
	if got := brokerACLsTLS(t, b, pki); len(got) != 1 {
		t.Fatalf("broker holds %d ACLs, want 1", len(got))
	}
}

// A Secret that does not hold what the config names is a config error: status says
// which, and nothing is done to the broker.
func TestMissingSecretIsReported(t *testing.T) {
	ns := env.Namespace(t, "kafka-nosecret")
	b := startBroker(t, kafkatest.Options{})
	handMade(t, b, topicACL("User:x", "t"))
	startOperator(t, enforcement.Options{})
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`{metadata: {name: kafka, namespace: %s}, spec: {workload: {name: kafka}, addr: %q, sasl: {mechanism: PLAIN, secretName: nope}}}`, ns, b.Addr), ksc)
	env.Create(t, ksc)
	suite.WaitFor(t, "a config error in status", 30*time.Second, func() (bool, error) {
		cond := apimeta.FindStatusCondition(getKSC(t, ksc).Status.Conditions, kafka.ConditionACLsInSync)
		return cond != nil && cond.Reason == kafka.ReasonConfigError && strings.Contains(cond.Message, `Secret kafka-nosecret/nope`), nil
	})
	if got := brokerACLs(t, b); len(got) != 1 {
		t.Fatalf("the broker was touched: %v", got.Sorted())
	}
}

// The point tells the status controller which ClientIntents to look at again when a
// broker's state changes without an event on them.
func TestPointNotifies(t *testing.T) {
	ns := env.Namespace(t, "kafka-notify")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}})
	op := startOperator(t, enforcement.Options{})
	changes := op.point.Subscribe()
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	brokerConfig(t, ns, "kafka", b, "")
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-changes:
			if e.Object.GetNamespace() == ns && e.Object.GetName() == ci.Name {
				return
			}
		case <-deadline:
			t.Fatal("no change notified for the ClientIntents")
		}
	}
}

func topicACL(p, topic string) acl.ACL {
	return acl.ACL{Principal: p, Host: "*", Resource: acl.Topic, Pattern: acl.Literal, Name: topic, Operation: acl.Write, Permission: acl.Allow}
}

// brokerACLsTLS lists a TLS broker's ACLs as its SCRAM administrator.
func brokerACLsTLS(t *testing.T, b *kafkatest.Broker, pki *kafkatest.PKI) acl.Set {
	t.Helper()
	certPEM, keyPEM, err := pki.ClientPEM(pkix.Name{CommonName: "test-admin"})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := broker.TLSConfig(certPEM, keyPEM, pki.CAPEM, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	mech, _ := broker.SASLMechanism("SCRAM-SHA-512", kafkatest.AdminUser, kafkatest.AdminPassword)
	cl, err := broker.New(broker.Config{Addr: b.Addr, TLS: tc, SASL: mech})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := cl.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Brokers whose clients authenticate with SASL user names get ACLs for those names
// through the principal template, and a consumer-group prefix works for real consumers.
func TestSASLUserTemplateAndGroupPrefix(t *testing.T) {
	ns := env.Namespace(t, "kafka-sasl-names")
	c, o := "client."+ns, "other."+ns
	b := startBroker(t, kafkatest.Options{Users: []string{c, o}, Topics: []string{"events"}})
	op := startOperator(t, enforcement.Options{})
	brokerConfig(t, ns, "kafka", b, `  principal: {template: "User:$(workload).$(namespace)"}
  consumerGroup: {name: "$(workload).$(namespace).", pattern: prefix}`)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: events, operations: [produce, consume]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	mustProduce(t, b, c, "events", "e1")
	mustConsume(t, b, c, "events", c+".audit", "e1")
	mustNotConsume(t, b, c, "events", "client-audit")
	mustNotConsume(t, b, c, "events", o+".audit")
	mustNotProduce(t, b, o, "events")
}
