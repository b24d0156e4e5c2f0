package kafka_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// listener is a TCP listener of a tenant's that records every byte sent to it.
type listener struct {
	addr  string
	bytes atomic.Int64
}

func tenantListener(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				buf := make([]byte, 4096)
				for {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := conn.Read(buf)
					l.bytes.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return l
}

// configError waits until the config's status reports a config error containing want.
func configError(t *testing.T, ksc *v2beta1.KafkaServerConfig, want string) {
	t.Helper()
	suite.WaitFor(t, fmt.Sprintf("a config error about %q", want), 30*time.Second, func() (bool, error) {
		cond := apimeta.FindStatusCondition(getKSC(t, ksc).Status.Conditions, kafka.ConditionACLsInSync)
		if cond == nil || cond.Reason != kafka.ReasonConfigError || !strings.Contains(cond.Message, want) {
			return false, fmt.Errorf("condition %+v", cond)
		}
		return true, nil
	})
}

func tenantConfig(t *testing.T, ns, name, addr, creds string) *v2beta1.KafkaServerConfig {
	t.Helper()
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`
metadata: {name: %s, namespace: %s}
spec:
  workload: {name: %s}
  addr: %q
%s`, name, ns, name, addr, creds), ksc)
	env.Create(t, ksc)
	return ksc
}

// Whoever may create a KafkaServerConfig in a namespace cannot have the operator send a
// Secret of that namespace they could not read, nor a file of the operator's, to an
// address of theirs: a Secret is used only when its owner labelled it for the operator,
// and files only from the directories the operator's administrator allowed. The tenant's
// listeners receive nothing (no TLS hello, no SASL exchange), and status says why.
func TestTenantCannotSendSecretsThroughTheOperator(t *testing.T) {
	ns := env.Namespace(t, "kafka-tenant-secrets")
	pki, err := kafkatest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := pki.ClientPEM(pkix.Name{CommonName: "payments.kafka-tenant-secrets"})
	if err != nil {
		t.Fatal(err)
	}
	// Another application's credentials, not opted in for the operator, and the
	// operator's own, opted in for the real broker's address only.
	env.Create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-admin", Labels: optIn, Annotations: map[string]string{kafka.CredentialsAddrsAnnotation: "kafka.kafka:9092, kafka.kafka:9093"}},
			StringData: map[string]string{"username": "payments", "password": "payments-password"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-sasl"}, StringData: map[string]string{"username": "payments", "password": "payments-password"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-tls"}, Data: map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "ca.pem": pki.CAPEM}},
	)
	allowed := t.TempDir()
	outside := filepath.Join(t.TempDir(), "operator-key.pem")
	if err := os.WriteFile(outside, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The tenant's broker records every request, SASL authentication included.
	tenantBroker := startBroker(t, kafkatest.Options{})
	var saslSeen, requests atomic.Int64
	tenantBroker.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		tenantBroker.KeepControl()
		requests.Add(1)
		if a, ok := req.(*kmsg.SASLAuthenticateRequest); ok && bytes.Contains(a.SASLAuthBytes, []byte("payments-password")) {
			saslSeen.Add(1)
		}
		return nil, nil, false
	})
	raw := tenantListener(t)
	startOperator(t, enforcement.Options{}, func(o *kafka.Options) { o.TLSDirs = []string{allowed} })

	sasl := tenantConfig(t, ns, "steal-sasl", tenantBroker.Addr, `  sasl: {mechanism: PLAIN, secretName: payments-sasl}`)
	tlsConf := tenantConfig(t, ns, "steal-tls", raw.addr, `  tls: {secretName: payments-tls}`)
	file := tenantConfig(t, ns, "steal-file", raw.addr, fmt.Sprintf(`  tls: {certFile: %q, keyFile: %q}`, outside, outside))
	redirected := tenantConfig(t, ns, "steal-admin", tenantBroker.Addr, `  sasl: {mechanism: PLAIN, secretName: kafka-admin}`)
	for _, k := range []*v2beta1.KafkaServerConfig{sasl, tlsConf, file, redirected} {
		suite.WaitFor(t, "a status on "+k.Name, 30*time.Second, func() (bool, error) {
			return apimeta.FindStatusCondition(getKSC(t, k).Status.Conditions, kafka.ConditionACLsInSync) != nil, nil
		})
	}
	// Several retries pass (the backoff is one second).
	time.Sleep(2500 * time.Millisecond)
	if n := saslSeen.Load(); n > 0 {
		t.Fatalf("the tenant's broker received the payments SASL password %d times", n)
	}
	if n := requests.Load(); n > 0 {
		t.Fatalf("the tenant's broker received %d requests", n)
	}
	if n := raw.bytes.Load(); n > 0 {
		t.Fatalf("the tenant's listener received %d bytes", n)
	}
	configError(t, sasl, "is not labelled "+kafka.CredentialsLabel+"=true")
	configError(t, tlsConf, "is not labelled "+kafka.CredentialsLabel+"=true")
	configError(t, file, "is not in a directory the operator allows")
	configError(t, redirected, "may be sent only to kafka.kafka:9092, kafka.kafka:9093")

	// The listeners do see a config the Secret's owner opted in: the test can observe
	// what it asserts did not happen above.
	opted := &corev1.Secret{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "payments-tls"}, opted); err != nil {
		t.Fatal(err)
	}
	opted.Labels = optIn
	if err := kube.Update(context.Background(), opted); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the opted-in Secret to be used", 30*time.Second, func() (bool, error) { return raw.bytes.Load() > 0, nil })
}

// The record of the ACLs the operator created lives where tenants cannot write: a
// ConfigMap a tenant writes in the broker's namespace, under the name earlier versions
// used and with their annotations, neither makes the operator delete an administrator's
// ACL nor is overwritten or deleted by it.
func TestOwnershipRecordCannotBeForged(t *testing.T) {
	ns := env.Namespace(t, "kafka-forge")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a", "admin-only"}})
	adminACL := topicACL("User:ops-admin", "admin-only")
	handMade(t, b, adminACL)
	// A user's own ConfigMap that happens to bear the name earlier versions used.
	userCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-acls.kafka"}, Data: map[string]string{"mine": "yes"}}
	env.Create(t, userCM)
	op := startOperator(t, enforcement.Options{})
	ksc, ci := producerOfA(t, op, ns, b)

	// The tenant forges a record claiming the administrator's ACL, in the format and
	// with the annotations earlier versions trusted.
	forged := forgedRecord(t, getKSC(t, ksc), adminACL)
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(userCM), userCM); err != nil {
		t.Fatal(err)
	}
	userCM.Annotations, userCM.BinaryData = forged.Annotations, forged.BinaryData
	if err := kube.Update(context.Background(), userCM); err != nil {
		t.Fatal(err)
	}
	// A restarted operator reads its record again.
	op.stop()
	op = startOperator(t, enforcement.Options{})
	updateIntents(t, ci, `{workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: admin-only, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	time.Sleep(2500 * time.Millisecond)
	if !brokerACLs(t, b).Has(adminACL) {
		t.Fatal("the administrator's ACL, claimed by a forged record, was deleted")
	}
	var after corev1.ConfigMap
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(userCM), &after); err != nil {
		t.Fatalf("the user's ConfigMap: %v", err)
	}
	if after.ResourceVersion != userCM.ResourceVersion {
		t.Fatalf("the user's ConfigMap was written by the operator: %+v", after.ObjectMeta)
	}
	// The operator's own record is in its namespace, keyed by the config's UID.
	var rec corev1.ConfigMap
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: recordNS, Name: kafka.OwnedConfigMapName(getKSC(t, ksc).UID)}, &rec); err != nil {
		t.Fatalf("the operator's record: %v", err)
	}
	// Deleting the config removes its ACLs and its record, and leaves the user's
	// ConfigMap and the administrator's ACL.
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the config to go", 30*time.Second, gone(ksc))
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(&rec), &rec); !apierrors.IsNotFound(err) {
		t.Fatalf("the record outlived its config: %v", err)
	}
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(userCM), &after); err != nil || after.ResourceVersion != userCM.ResourceVersion {
		t.Fatalf("the user's ConfigMap after the config's deletion: %v %+v", err, after.ObjectMeta)
	}
	if got := brokerACLs(t, b); !got.Equal(acl.NewSet(adminACL)) {
		t.Fatalf("after deletion the broker holds %v, want only the administrator's ACL", got.Sorted())
	}
}

// producerOfA configures broker b as "kafka" and lets workload client produce to topic a,
// and waits until that is enforced.
func producerOfA(t *testing.T, op *runningOperator, ns string, b *kafkatest.Broker) (*v2beta1.KafkaServerConfig, *v2beta1.ClientIntents) {
	t.Helper()
	ksc := brokerConfig(t, ns, "kafka", b, "")
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)
	return ksc, ci
}

// forgedRecord is the ConfigMap earlier versions kept next to the config, naming acls.
func forgedRecord(t *testing.T, ksc *v2beta1.KafkaServerConfig, acls ...acl.ACL) *corev1.ConfigMap {
	t.Helper()
	var rows []string
	for _, a := range acls {
		rows = append(rows, fmt.Sprintf(`[%q,%q,%q,%q,%q,%q,%q]`, a.Principal, a.Host, a.Resource, a.Pattern, a.Name, a.Operation, a.Permission))
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte("[" + strings.Join(rows, ",") + "]")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			"intentguard.dev/kafka-server-config": string(ksc.UID), "intentguard.dev/kafka-cluster-id": "",
		}},
		BinaryData: map[string][]byte{"owned.json.gz": buf.Bytes()},
	}
}

// A CreateACLs request the broker applies but whose answer is lost (a timeout, a dropped
// connection) leaves no ACL behind for good: the attempted creation stays in the record
// until a listing shows the ACL absent, so once the intents go, the ACL goes too.
func TestAmbiguousCreateLeavesNoPermanentACL(t *testing.T) {
	ns := env.Namespace(t, "kafka-ambiguous")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}})
	// The first CreateACLs is applied (by an administrator client, while the operator's
	// request is held), then the operator's connection is dropped without an answer, and
	// so are its retries: the operator cannot tell whether the ACL was created.
	var dropped atomic.Bool
	var applying atomic.Bool
	b.ControlKey(int16(kmsg.CreateACLs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.KeepControl()
		if applying.Load() {
			return nil, nil, false
		}
		if dropped.Load() {
			return nil, fmt.Errorf("answer lost"), true
		}
		creations := req.(*kmsg.CreateACLsRequest).Creations
		applying.Store(true)
		var applyErr error
		b.SleepControl(func() {
			admin, err := b.Client(kafkatest.AdminUser, kafkatest.AdminPassword)
			if err != nil {
				applyErr = err
				return
			}
			defer admin.Close()
			r := kmsg.NewPtrCreateACLsRequest()
			r.Creations = creations
			_, applyErr = r.RequestWith(context.Background(), admin)
		})
		applying.Store(false)
		dropped.Store(true)
		if applyErr != nil {
			t.Errorf("applying the held creation: %v", applyErr)
		}
		return nil, fmt.Errorf("answer lost"), true
	})
	op := startOperator(t, enforcement.Options{})
	ksc, ci := producerOfA(t, op, ns, b)
	if !dropped.Load() {
		t.Fatal("the operator's creation was never held and dropped")
	}
	mustProduce(t, b, c, "a", "1")
	if st := getKSC(t, ksc).Status; st.OwnedACLs != 1 || st.ForeignACLs != 0 {
		t.Fatalf("the ACL whose creation was ambiguous: owned %d, foreign %d; want owned", st.OwnedACLs, st.ForeignACLs)
	}
	if err := kube.Delete(context.Background(), ci); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the ACL to go with the intents", 30*time.Second, func() (bool, error) {
		if got := brokerACLs(t, b); len(got) > 0 {
			return false, fmt.Errorf("broker holds %v", got.Sorted())
		}
		return true, nil
	})
	mustNotProduce(t, b, c, "a")
}

// With the Kafka point off (--kafka-acls=false), the operator releases the finalizers
// the point put on KafkaServerConfigs, so that deleting them (or their namespace) does
// not wait for a controller that no longer runs.
func TestKafkaACLsOffReleasesFinalizers(t *testing.T) {
	ns := env.Namespace(t, "kafka-off")
	b := startBroker(t, kafkatest.Options{})
	op := startOperator(t, enforcement.Options{})
	ksc := brokerConfig(t, ns, "kafka", b, "")
	suite.WaitFor(t, "the finalizer", 30*time.Second, func() (bool, error) {
		return len(getKSC(t, ksc).Finalizers) == 1, nil
	})
	op.stop()
	// A config deleted while no operator runs waits for its finalizer.
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	if got := getKSC(t, ksc); got.DeletionTimestamp.IsZero() || len(got.Finalizers) != 1 {
		t.Fatalf("expected a config held by its finalizer: %+v", got.ObjectMeta)
	}
	off := env.RunOperator(t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		return operator.New(ctx, local.Config, operator.Config{MetricsAddr: "0", ProbeAddr: "0", InProcess: true, KafkaACLs: false})
	})
	suite.WaitFor(t, "the config to be released and gone", 30*time.Second, gone(ksc))
	off.Stop()
}

// An object at the record's name that the operator did not write (here made before the
// operator first saw the config) is never overwritten or deleted: status reports it and
// the broker is left as it is, and deleting the config leaves the object too.
func TestForeignObjectAtTheRecordNameIsLeftAlone(t *testing.T) {
	ns := env.Namespace(t, "kafka-foreign-record")
	c := user(ns, "client")
	b := startBroker(t, kafkatest.Options{Users: []string{c}, Topics: []string{"a"}})
	ksc := brokerConfig(t, ns, "kafka", b, "")
	env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: a, operations: [produce]}]}}]}`)
	squatter := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: recordNS, Name: kafka.OwnedConfigMapName(getKSC(t, ksc).UID)},
		Data:       map[string]string{"someone": "else"},
	}
	env.Create(t, squatter)
	t.Cleanup(func() { _ = kube.Delete(context.Background(), squatter) })
	startOperator(t, enforcement.Options{})
	configError(t, ksc, "was not written by the operator")
	if got := brokerACLs(t, b); len(got) != 0 {
		t.Fatalf("the broker was changed: %v", got.Sorted())
	}
	if err := kube.Delete(context.Background(), ksc); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the config to go", 30*time.Second, gone(ksc))
	var after corev1.ConfigMap
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(squatter), &after); err != nil || after.ResourceVersion != squatter.ResourceVersion {
		t.Fatalf("the foreign ConfigMap was changed or deleted: %v %+v", err, after.ObjectMeta)
	}
}

// The record of a KafkaServerConfig deleted while the Kafka point was off is removed when
// the operator starts; a ConfigMap of the operator's namespace that is not a record, or
// the record of a config that still exists, stays.
func TestRecordsOfDeletedConfigsAreSwept(t *testing.T) {
	ns := env.Namespace(t, "kafka-sweep")
	live := brokerConfig(t, ns, "kafka", startBroker(t, kafkatest.Options{}), "")
	record := func(name, uid, of string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Namespace: recordNS, Name: name,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "intentguard"},
			Annotations: map[string]string{kafka.BrokerUIDAnnotation: uid, kafka.BrokerAnnotation: of},
		}}
	}
	orphan := record(kafka.OwnedConfigMapName("gone-uid"), "gone-uid", ns+"/deleted")
	recreated := record(kafka.OwnedConfigMapName("old-uid"), "old-uid", ns+"/kafka")
	kept := record(kafka.OwnedConfigMapName(live.UID), string(live.UID), ns+"/kafka")
	notRecord := record("settings", "gone-uid", ns+"/deleted")
	env.Create(t, orphan, recreated, kept, notRecord)
	t.Cleanup(func() {
		for _, cm := range []*corev1.ConfigMap{orphan, recreated, kept, notRecord} {
			_ = kube.Delete(context.Background(), cm)
		}
	})
	startOperator(t, enforcement.Options{})
	suite.WaitFor(t, "the orphaned records to go", 30*time.Second, func() (bool, error) {
		return apierrors.IsNotFound(kube.Get(context.Background(), client.ObjectKeyFromObject(orphan), &corev1.ConfigMap{})) &&
			apierrors.IsNotFound(kube.Get(context.Background(), client.ObjectKeyFromObject(recreated), &corev1.ConfigMap{})), nil
	})
	for _, cm := range []*corev1.ConfigMap{kept, notRecord} {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); err != nil {
			t.Errorf("%s: %v", cm.Name, err)
		}
	}
}
