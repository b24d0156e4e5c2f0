package kafka_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// The two operators meet: the credentials operator issues the broker's, the intents
// operator's and the clients' certificates; the broker serves TLS with its certificate
// and requires client certificates from the same CA; the intents operator writes ACLs
// over that mutual TLS connection; and a client using the certificate it was issued,
// under the principal a broker derives from that certificate, may produce where its
// intents say, while another client with its own issued certificate may not.
func TestIssuedCertificatesAgainstTheBroker(t *testing.T) {
	ns := env.Namespace(t, "creds-kafka")
	cc := credentials.Defaults()
	cc.Namespace, cc.MetricsAddr, cc.ProbeAddr, cc.InProcess = ns, "0", "0", true
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := credentials.New(ctx, local.Config, cc)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("credentials operator: %v", err)
		}
	})
	for _, w := range []string{"kafka", "intents-operator", "client", "other"} {
		env.Create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: w, Annotations: map[string]string{credentials.Prefix + credentials.AnnSecretName: w + "-tls"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		})
	}
	pemOf := map[string]map[string][]byte{}
	suite.WaitFor(t, "the four Secrets", 30*time.Second, func() (bool, error) {
		for _, w := range []string{"kafka", "intents-operator", "client", "other"} {
			var s corev1.Secret
			if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: w + "-tls"}, &s); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			pemOf[w] = s.Data
		}
		return true, nil
	})
	// The namespace's owner lets the intents operator use its issued certificate.
	var opTLS corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "intents-operator-tls"}, &opTLS); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(opTLS.DeepCopy())
	opTLS.Labels[kafka.CredentialsLabel] = "true"
	if err := kube.Patch(context.Background(), &opTLS, patch); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemOf["kafka"]["ca.pem"]) {
		t.Fatal("no CA in the broker's Secret")
	}
	serverCert, err := tls.X509KeyPair(pemOf["kafka"]["cert.pem"], pemOf["kafka"]["key.pem"])
	if err != nil {
		t.Fatal(err)
	}
	serverName := "kafka." + ns
	b := startBroker(t, kafkatest.Options{
		TLS:            &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		AdminMechanism: "SCRAM-SHA-512",
		Users:          []string{user(ns, "client"), user(ns, "other")},
		Topics:         []string{"orders"},
	})
	env.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin", Labels: optIn}, StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword}})

	op := startOperator(t, enforcement.Options{})
	ksc := &v2beta1.KafkaServerConfig{}
	decode(t, fmt.Sprintf(`
metadata: {name: kafka, namespace: %s}
spec:
  workload: {name: kafka}
  addr: %q
  tls: {secretName: intents-operator-tls, serverName: %s}
  sasl: {mechanism: SCRAM-SHA-512, secretName: admin}`, ns, b.Addr, serverName), ksc)
	env.Create(t, ksc)
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kafka: {name: kafka, topics: [{name: orders, operations: [produce, describe]}]}}]}`)
	waitState(t, op, ci, enforcement.Enforced)

	// Each client connects with its own issued certificate, under the principal a broker
	// derives from that certificate (kfake takes it as the SASL user name).
	produce := func(w string) error {
		cert, err := tls.X509KeyPair(pemOf[w]["cert.pem"], pemOf[w]["key.pem"])
		if err != nil {
			return err
		}
		leaf, err := pki.ParseCert(pemOf[w]["cert.pem"])
		if err != nil {
			return err
		}
		// The certificate must bear the subject the broker renders as the client's user.
		if leaf.Subject.CommonName != w+"."+ns || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "intentguard" {
			return fmt.Errorf("certificate of %s has subject CN=%s O=%v", w, leaf.Subject.CommonName, leaf.Subject.Organization)
		}
		cl, err := b.Client(user(ns, w), kafkatest.ClientPassword,
			kgo.DialTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}),
			kgo.DefaultProduceTopic("orders"))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("from " + w)}).FirstErr()
	}
	if err := produce("client"); err != nil {
		t.Fatalf("client with its issued certificate: %v", err)
	}
	if err := produce("other"); !kafkatest.Denied(err) {
		t.Fatalf("other with its issued certificate: want not authorized, got %v", err)
	}
}
