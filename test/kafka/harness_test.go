// Package kafka_test runs the Kafka enforcement point end to end: the operator on a real
// kube-apiserver, brokers that enforce ACLs for SASL principals, and real Kafka clients
// producing and consuming as the workloads the intents name.
package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// recordNS is the operator's own namespace, where it keeps its ownership records.
const recordNS = "intentguard-system"

var (
	env   *suite.Env
	local *controlplane.Cluster
	kube  client.Client
)

func TestMain(m *testing.M) {
	env = suite.Start(suite.Options{
		// Kafka ACLs need no pods, so no kube-controller-manager.
		ControlPlane: controlplane.Options{WithoutControllerManager: true},
		Setup: func(e *suite.Env) error {
			return e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: recordNS}})
		},
	})
	local, kube = env.Cluster, env.Client
	os.Exit(env.Run(m))
}

// user is the SASL user name a client workload has on the test brokers: the DN a broker's
// default principal builder (the JVM's X500Principal, RFC 2253) renders for the
// certificate the credentials operator issues it, so that the default principal template
// ("User:$(dn)") names it. It is written out here rather than computed by the code under
// test; for names with characters RFC 2253 escapes, internal/principal is checked against
// the JVM itself.
func user(ns, workload string) string {
	return "CN=" + workload + "." + ns + ",O=intentguard"
}

// runningOperator is an operator the test can stop before its end (operator restart).
type runningOperator struct {
	point *kafka.Point
	stop  func()
}

// startOperator runs the operator with the Kafka point until the test ends or stop; the
// Kafka options (1 s resync and backoff) can be changed by the test.
func startOperator(t *testing.T, enf enforcement.Options, change ...func(*kafka.Options)) *runningOperator {
	t.Helper()
	op := &runningOperator{}
	mgr := env.RunOperator(t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		mgr, err := operator.New(ctx, local.Config, operator.Config{Enforcement: enf, MetricsAddr: "0", ProbeAddr: "0", InProcess: true, KeepKafkaFinalizers: true})
		if err != nil {
			return nil, err
		}
		ko := kafka.Options{Enforcement: enforcement.Options(enf), ResyncPeriod: time.Second, MaxBackoff: time.Second, DeleteTimeout: time.Hour, RecordNamespace: recordNS}
		for _, c := range change {
			c(&ko)
		}
		if op.point, err = kafka.Setup(ctx, mgr, ko); err != nil {
			return nil, fmt.Errorf("setting up the Kafka point: %w", err)
		}
		return mgr, nil
	})
	op.stop = mgr.Stop
	return op
}

func decode(t *testing.T, doc string, into client.Object) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("decoding %T: %v", into, err)
	}
}

// updateIntents replaces the spec of existing ClientIntents (again, if the status
// controller wrote in between).
func updateIntents(t *testing.T, ci *v2beta1.ClientIntents, specDoc string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var fresh v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &fresh); err != nil {
			return err
		}
		fresh.Spec = v2beta1.ClientIntentsSpec{}
		if err := yaml.UnmarshalStrict([]byte(specDoc), &fresh.Spec); err != nil {
			return err
		}
		return kube.Update(context.Background(), &fresh)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storeIntents rewrites a ClientIntents' spec straight in etcd, bypassing admission: the
// state of an object written under an earlier, laxer schema, which the operator must
// still report on without letting it hold anything else back.
func storeIntents(t *testing.T, ci *v2beta1.ClientIntents, specDoc string) {
	t.Helper()
	var fresh v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &fresh); err != nil {
		t.Fatal(err)
	}
	fresh.Spec = v2beta1.ClientIntentsSpec{}
	if err := yaml.UnmarshalStrict([]byte(specDoc), &fresh.Spec); err != nil {
		t.Fatal(err)
	}
	fresh.APIVersion, fresh.Kind = v2beta1.GroupVersion.String(), "ClientIntents"
	fresh.Generation++
	b, err := json.Marshal(&fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.EtcdPut("/registry/k8s.otterize.com/clientintents/"+fresh.Namespace+"/"+fresh.Name, b); err != nil {
		t.Fatal(err)
	}
}

// brokerConfig creates the KafkaServerConfig of a broker, with the admin credentials in a
// Secret, as a platform team would.
func brokerConfig(t *testing.T, ns, workload string, b *kafkatest.Broker, extra string) *v2beta1.KafkaServerConfig {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: workload + "-admin", Labels: optIn},
		StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword},
	}
	env.Create(t, secret)
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`
metadata: {name: %s, namespace: %s}
spec:
  workload: {name: %s, kind: StatefulSet}
  addr: %q
  sasl: {mechanism: PLAIN, secretName: %s-admin}
%s`, workload, ns, workload, b.Addr, workload, extra), ksc)
	env.Create(t, ksc)
	return ksc
}

// optIn is the label with which a Secret's owner lets the operator use it for a broker.
var optIn = map[string]string{kafka.CredentialsLabel: "true"}

// waitState waits until the Kafka point reports every kafka target of the ClientIntents,
// at their current generation, in the state.
func waitState(t *testing.T, op *runningOperator, ci *v2beta1.ClientIntents, want enforcement.State) []enforcement.TargetState {
	t.Helper()
	var got []enforcement.TargetState
	suite.WaitFor(t, fmt.Sprintf("ClientIntents %s/%s %s", ci.Namespace, ci.Name, want), 30*time.Second, func() (bool, error) {
		var fresh v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &fresh); err != nil {
			return false, err
		}
		var err error
		got, err = op.point.Outcomes(context.Background(), &fresh)
		if err != nil || len(got) == 0 {
			return false, fmt.Errorf("report %v: %w", got, err)
		}
		for _, s := range got {
			if s.State != want {
				return false, fmt.Errorf("%s is %s: %s", s.Target, s.State, s.Message)
			}
		}
		return true, nil
	})
	return got
}

// brokerACLs lists the broker's ACLs as its administrator.
func brokerACLs(t *testing.T, b *kafkatest.Broker) acl.Set {
	t.Helper()
	cl := adminClient(t, b)
	defer cl.Close()
	got, err := cl.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func adminClient(t *testing.T, b *kafkatest.Broker) *broker.Client {
	t.Helper()
	mech, _ := broker.SASLMechanism(kafkatest.Mechanism, kafkatest.AdminUser, kafkatest.AdminPassword)
	cl, err := broker.New(broker.Config{Addr: b.Addr, SASL: mech})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// handMade creates ACLs as a broker administrator would, outside the operator.
func handMade(t *testing.T, b *kafkatest.Broker, acls ...acl.ACL) {
	t.Helper()
	cl := adminClient(t, b)
	defer cl.Close()
	if _, err := cl.Create(context.Background(), acls); err != nil {
		t.Fatal(err)
	}
}

func startBroker(t *testing.T, o kafkatest.Options) *kafkatest.Broker {
	t.Helper()
	b, err := kafkatest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func notAuthorized(err error) bool { return kafkatest.Denied(err) }

// canProduce and canConsume assert a real client's outcome.
func mustProduce(t *testing.T, b *kafkatest.Broker, u, topic, value string) {
	t.Helper()
	if err := b.Produce(context.Background(), u, topic, value); err != nil {
		t.Fatalf("%s producing to %s: %v", u, topic, err)
	}
}

func mustNotProduce(t *testing.T, b *kafkatest.Broker, u, topic string) {
	t.Helper()
	if err := b.Produce(context.Background(), u, topic, "denied?"); !notAuthorized(err) {
		t.Fatalf("%s producing to %s: want not authorized, got %v", u, topic, err)
	}
}

func mustConsume(t *testing.T, b *kafkatest.Broker, u, topic, group, value string) {
	t.Helper()
	if err := b.Consume(context.Background(), u, topic, group, value); err != nil {
		t.Fatalf("%s consuming %s in group %s: %v", u, topic, group, err)
	}
}

func mustNotConsume(t *testing.T, b *kafkatest.Broker, u, topic, group string) {
	t.Helper()
	if err := b.Consume(context.Background(), u, topic, group, "never"); !notAuthorized(err) {
		t.Fatalf("%s consuming %s: want not authorized, got %v", u, topic, err)
	}
}

func getKSC(t *testing.T, ksc *v2beta1.KafkaServerConfig) *v2beta1.KafkaServerConfig {
	t.Helper()
	var got v2beta1.KafkaServerConfig
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ksc), &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func gone(o client.Object) func() (bool, error) {
	return func() (bool, error) {
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(o), o)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	}
}
