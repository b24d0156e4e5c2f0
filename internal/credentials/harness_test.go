package credentials_test

import (
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

var (
	env  *suite.Env
	kube client.Client
)

func TestMain(m *testing.M) {
	env = suite.Start(suite.Options{AddToScheme: []func(*runtime.Scheme) error{eventsv1.AddToScheme}})
	kube = env.Client
	os.Exit(env.Run(m))
}

// testConfig is the operator's defaults with the CA in ns and a low minimum TTL.
func testConfig(ns string) credentials.Config {
	c := credentials.Defaults()
	c.Namespace = ns
	c.MetricsAddr, c.ProbeAddr = "0", "0"
	c.InProcess = true
	c.MinTTL = time.Second
	return c
}

// startOperator runs a credentials operator until stop is called or the test ends.
func startOperator(t *testing.T, c credentials.Config) (counter *suite.WriteCounter, stop func()) {
	t.Helper()
	cfg, counter := suite.Counted(env.Cluster.Config)
	mgr := env.RunOperator(t, "credentials operator", func(ctx context.Context) (ctrl.Manager, error) {
		return credentials.New(ctx, cfg, c)
	})
	return counter, mgr.Stop
}

// secret waits for a Secret to exist and returns it.
func secret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	suite.WaitFor(t, "Secret "+ns+"/"+name, 30*time.Second, func() (bool, error) {
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	return &s
}

// podEvent waits for an Event with the reason about a pod in ns and returns its note.
func podEvent(t *testing.T, ns, reason string) string {
	t.Helper()
	var note string
	suite.WaitFor(t, "Event "+reason+" in "+ns, 30*time.Second, func() (bool, error) {
		var events eventsv1.EventList
		if err := kube.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "Pod" && e.Reason == reason {
				note = e.Note
				return true, nil
			}
		}
		return false, nil
	})
	return note
}

// verify checks that chain verifies against roots for client and server use.
func verify(t *testing.T, chain, roots []*x509.Certificate) {
	t.Helper()
	if err := pki.Verify(chain, roots, pki.ServerAuth|pki.ClientAuth); err != nil {
		t.Fatalf("certificate %s does not verify against the bundle: %v", chain[0].Subject, err)
	}
}
