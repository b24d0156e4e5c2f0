package credentials_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/apitest"
	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/localcluster"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/tutorial"
)

var (
	local *localcluster.Cluster
	kube  client.Client
	// operatorMu serialises tests: one operator runs at a time, with its own settings.
	operatorMu sync.Mutex
)

func TestMain(m *testing.M) {
	if os.Getenv("E2E_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(apitest.Discard{})))
	}
	var err error
	local, err = localcluster.Start(context.Background(), localcluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane:", err)
		os.Exit(1)
	}
	scheme := informer.Scheme()
	if err := eventsv1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if kube, err = client.New(local.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := local.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
	}
	os.Exit(code)
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
func startOperator(t *testing.T, c credentials.Config) (counter *apitest.WriteCounter, stop func()) {
	t.Helper()
	operatorMu.Lock()
	counter = &apitest.WriteCounter{}
	cfg := rest.CopyConfig(local.Config)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.WrapTransport = counter.Wrap
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := credentials.New(ctx, cfg, c)
	if err != nil {
		cancel()
		operatorMu.Unlock()
		t.Fatalf("building the credentials operator: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator: %v", err)
			}
			operatorMu.Unlock()
		})
	}
	t.Cleanup(stop)
	return counter, stop
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

// deployment creates a Deployment whose pods carry the annotations and waits for its pods.
func deployment(t *testing.T, ns, name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	t.Helper()
	d := deploymentObject(ns, name, annotations)
	d.Spec.Replicas = &replicas
	create(t, d)
	waitFor(t, fmt.Sprintf("%d pods of %s/%s", replicas, ns, name), 30*time.Second, func() (bool, error) {
		var pods corev1.PodList
		if err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": name}); err != nil {
			return false, err
		}
		return len(pods.Items) >= int(replicas), nil
	})
	return d
}

func deploymentObject(ns, name string, annotations map[string]string) *appsv1.Deployment {
	d := tutorial.Deployment(ns, name, 8080)
	d.Spec.Template.Annotations = annotations
	return d
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			last = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// secret waits for a Secret to exist and returns it.
func secret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	waitFor(t, "Secret "+ns+"/"+name, 30*time.Second, func() (bool, error) {
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
	waitFor(t, "Event "+reason+" in "+ns, 30*time.Second, func() (bool, error) {
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
