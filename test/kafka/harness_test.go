// Package kafka_test runs the Kafka enforcement point end to end: the operator on a real
// kube-apiserver, brokers that enforce ACLs for SASL principals, and real Kafka clients
// producing and consuming as the workloads the intents name.
package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/apitest"

	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/localcluster"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
	"github.com/intentguard/intentguard/internal/point/kafka/kafkatest"
)

// recordNS is the operator's own namespace, where it keeps its ownership records.
const recordNS = "intentguard-system"

var (
	local      *localcluster.Cluster
	kube       client.Client
	operatorMu sync.Mutex
)

func TestMain(m *testing.M) {
	if os.Getenv("E2E_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(apitest.Discard{})))
	}
	var err error
	// Kafka ACLs need no pods, so no kube-controller-manager.
	local, err = localcluster.Start(context.Background(), localcluster.Options{WithoutControllerManager: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane:", err)
		os.Exit(1)
	}
	kube, err = client.New(local.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: recordNS}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := local.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
	}
	os.Exit(code)
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
	operatorMu.Lock()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := operator.New(ctx, local.Config, operator.Config{Enforcement: enf, MetricsAddr: "0", ProbeAddr: "0", InProcess: true, KeepKafkaFinalizers: true})
	if err != nil {
		cancel()
		operatorMu.Unlock()
		t.Fatalf("building operator: %v", err)
	}
	ko := kafka.Options{Enforcement: enforcement.Options(enf), ResyncPeriod: time.Second, MaxBackoff: time.Second, DeleteTimeout: time.Hour, RecordNamespace: recordNS}
	for _, c := range change {
		c(&ko)
	}
	point, err := kafka.Setup(ctx, mgr, ko)
	if err != nil {
		cancel()
		operatorMu.Unlock()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	op := &runningOperator{point: point}
	op.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator: %v", err)
			}
			operatorMu.Unlock()
		})
	}
	t.Cleanup(op.stop)
	return op
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	create(t, ns)
	t.Cleanup(func() { _ = kube.Delete(context.Background(), ns) })
	return name
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := kube.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

func decode(t *testing.T, doc string, into client.Object) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("decoding %T: %v", into, err)
	}
}

// applyIntents creates ClientIntents from YAML, as users write them.
func applyIntents(t *testing.T, ns, doc string) *v2beta1.ClientIntents {
	t.Helper()
	ci := &v2beta1.ClientIntents{}
	decode(t, doc, ci)
	ci.Namespace = ns
	create(t, ci)
	return ci
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
	if err := apitest.EtcdPut(local.EtcdURL(), "/registry/k8s.otterize.com/clientintents/"+fresh.Namespace+"/"+fresh.Name, b); err != nil {
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
	create(t, secret)
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`
metadata: {name: %s, namespace: %s}
spec:
  workload: {name: %s, kind: StatefulSet}
  addr: %q
  sasl: {mechanism: PLAIN, secretName: %s-admin}
%s`, workload, ns, workload, b.Addr, workload, extra), ksc)
	create(t, ksc)
	return ksc
}

// optIn is the label with which a Secret's owner lets the operator use it for a broker.
var optIn = map[string]string{kafka.CredentialsLabel: "true"}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		lastErr = err
		return ok && err == nil, nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
	}
}

// waitState waits until the Kafka point reports every kafka target of the ClientIntents,
// at their current generation, in the state.
func waitState(t *testing.T, op *runningOperator, ci *v2beta1.ClientIntents, want enforcement.State) []enforcement.TargetState {
	t.Helper()
	var got []enforcement.TargetState
	waitFor(t, fmt.Sprintf("ClientIntents %s/%s %s", ci.Namespace, ci.Name, want), 30*time.Second, func() (bool, error) {
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
