package e2e

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
)

// listener accepts TCP connections and counts them: where a tenant points a
// KafkaServerConfig, to see whether the operator ever brings it credentials.
type listener struct {
	net.Listener
	accepted atomic.Int64
}

func listen(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{Listener: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return l
}

// testKafkaCredentials is the Kafka part of the adversarial test: a tenant may create
// KafkaServerConfigs in its namespace, pointing at a listener of its own, and naming
// credentials it was never given — a Secret of its namespace that nobody opted in for
// the operator, or files of the operator's pod. The operator must refuse each with a
// clear status (ConfigError), never connect to the listener with them, and never change
// the Secrets.
func testKafkaCredentials(t *testing.T, seed int64, replay string) {
	rnd := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	// The records of owned ACLs live in a namespace of the operator's, which the tenant
	// cannot write.
	records := env.Namespace(t, "advk-operator")
	startOperatorConfig(t, local.Config, operator.Config{KafkaACLs: true, Kafka: kafka.Options{RecordNamespace: records}})
	ns := env.Namespace(t, "advk-t0")
	pki, err := kafkatest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.ClientPEM(pkix.Name{CommonName: "operator", Organization: []string{"intentguard"}})
	if err != nil {
		t.Fatal(err)
	}
	// Files of the operator's pod (its own client credentials, say).
	dir := t.TempDir()
	files := map[string][]byte{"cert.pem": cert, "key.pem": key, "ca.pem": pki.CAPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Secrets of the tenant's namespace that no one opted in for the operator.
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"}, Data: map[string][]byte{"username": []byte("app"), "password": []byte("s3cret-db-password")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-tls"}, Data: files},
	}
	for _, s := range secrets {
		env.Create(t, s)
	}
	rv := map[string]string{}
	for _, s := range secrets {
		rv[s.Name] = s.ResourceVersion
	}
	attempts := []struct {
		what string
		spec func(addr string) v2beta1.KafkaServerConfigSpec
	}{
		{"SASL credentials from Secret db-creds", func(addr string) v2beta1.KafkaServerConfigSpec {
			return v2beta1.KafkaServerConfigSpec{Addr: addr, SASL: &v2beta1.KafkaSASL{Mechanism: "PLAIN", SecretName: "db-creds", UsernameKey: "username", PasswordKey: "password"}}
		}},
		{"TLS credentials from Secret team-tls", func(addr string) v2beta1.KafkaServerConfigSpec {
			return v2beta1.KafkaServerConfigSpec{Addr: addr, TLS: &v2beta1.KafkaTLS{SecretName: "team-tls"}}
		}},
		{"TLS credentials from the operator's files", func(addr string) v2beta1.KafkaServerConfigSpec {
			return v2beta1.KafkaServerConfigSpec{Addr: addr, TLS: &v2beta1.KafkaTLS{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), RootCAFile: filepath.Join(dir, "ca.pem")}}
		}},
		{"a password from Secret db-creds as a TLS key", func(addr string) v2beta1.KafkaServerConfigSpec {
			return v2beta1.KafkaServerConfigSpec{Addr: addr, TLS: &v2beta1.KafkaTLS{SecretName: "db-creds", CertKey: "username", KeyKey: "password", CAKey: "password"}}
		}},
	}
	rnd.Shuffle(len(attempts), func(i, j int) { attempts[i], attempts[j] = attempts[j], attempts[i] })
	for i, at := range attempts {
		l := listen(t)
		spec := at.spec(l.Addr().String())
		spec.Workload = v2beta1.Workload{Name: fmt.Sprintf("broker%d", i)}
		ksc := &v2beta1.KafkaServerConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ksc%d", i)}, Spec: spec}
		env.Create(t, ksc)
		var got v2beta1.KafkaServerConfig
		var cond *metav1.Condition
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if err := kube.Get(ctx, client.ObjectKeyFromObject(ksc), &got); err != nil {
				t.Fatal(err)
			}
			if cond = apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady); cond != nil && cond.Reason == enforcement.ReasonFailed {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// A moment more, in case a connection follows the status.
		time.Sleep(500 * time.Millisecond)
		if n := l.accepted.Load(); n > 0 {
			t.Fatalf("seed %d (replay: %s): a tenant KafkaServerConfig with %s made the operator connect %d time(s) to the tenant's listener", seed, replay, at.what, n)
		}
		inSync := apimeta.FindStatusCondition(got.Status.Conditions, kafka.ConditionACLsInSync)
		if cond == nil || cond.Reason != enforcement.ReasonFailed || inSync == nil || inSync.Reason != kafka.ReasonConfigError {
			t.Fatalf("seed %d (replay: %s): a tenant KafkaServerConfig with %s is not refused with Ready=False (Failed), ACLsInSync=False (ConfigError): Ready=%+v, ACLsInSync=%+v", seed, replay, at.what, cond, inSync)
		}
		if msg := strings.ToLower(cond.Message); !strings.Contains(msg, "secret") && !strings.Contains(msg, "file") {
			t.Errorf("seed %d: the refusal of %s does not say what was refused: %q", seed, at.what, cond.Message)
		}
		for _, c := range got.Status.Conditions {
			if strings.Contains(c.Message, "s3cret-db-password") {
				t.Fatalf("seed %d: the status of a tenant KafkaServerConfig shows the password of Secret db-creds: %s %q", seed, c.Type, c.Message)
			}
		}
	}
	for _, s := range secrets {
		var now corev1.Secret
		if err := kube.Get(ctx, client.ObjectKeyFromObject(s), &now); err != nil {
			t.Fatal(err)
		}
		if now.ResourceVersion != rv[s.Name] {
			t.Fatalf("seed %d: Secret %s/%s changed", seed, ns, s.Name)
		}
	}
}
