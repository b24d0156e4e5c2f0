// Package suite runs a Go test package against one local control plane: TestMain starts
// it once, each test gets namespaces and objects that go away with it, waits on
// conditions, and runs controller managers until it ends, one operator at a time where a
// test needs the control plane to itself.
package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// VerboseEnv names the environment variable that, set to anything, sends the logs of the
// managers under test to stderr; by default they are dropped.
const VerboseEnv = "E2E_VERBOSE"

// Options configures Start.
type Options struct {
	// ControlPlane says which parts of the control plane run.
	ControlPlane controlplane.Options
	// Scheme is the scheme of the administrator's client; nil means informer.Scheme().
	Scheme *runtime.Scheme
	// AddToScheme registers further types in Scheme.
	AddToScheme []func(*runtime.Scheme) error
	// Setup, when set, prepares the control plane once, before any test runs.
	Setup func(*Env) error
}

// Env is a running control plane shared by the tests of a package.
type Env struct {
	// Cluster is the control plane.
	Cluster *controlplane.Cluster
	// Client reaches it as a cluster administrator, without a cache.
	Client client.Client

	// operators is held by the test that runs operators, so that each test's operator
	// has the control plane to itself, with its own settings.
	operators sync.Mutex
}

// Start sets the controller-runtime logger, starts the control plane and builds the
// administrator's client. It is meant for TestMain: on failure it reports on stderr and
// exits the process.
func Start(o Options) *Env {
	if os.Getenv(VerboseEnv) != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	cp, err := controlplane.Start(context.Background(), o.ControlPlane)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane:", err)
		os.Exit(1)
	}
	e := &Env{Cluster: cp}
	if err := e.setUp(o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = cp.Stop()
		os.Exit(1)
	}
	return e
}

func (e *Env) setUp(o Options) error {
	scheme := o.Scheme
	if scheme == nil {
		scheme = informer.Scheme()
	}
	for _, add := range o.AddToScheme {
		if err := add(scheme); err != nil {
			return fmt.Errorf("registering the test's types: %w", err)
		}
	}
	c, err := client.New(e.Cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("building the administrator's client: %w", err)
	}
	e.Client = c
	if o.Setup != nil {
		if err := o.Setup(e); err != nil {
			return fmt.Errorf("preparing the control plane: %w", err)
		}
	}
	return nil
}

// Run runs the tests, then stops the control plane; it returns TestMain's exit code.
func (e *Env) Run(m *testing.M) int {
	code := m.Run()
	if err := e.Cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
	}
	return code
}

// Namespace creates a namespace that is deleted when the test ends, and returns its name.
func (e *Env) Namespace(t testing.TB, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	e.Create(t, ns)
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return name
}

// Create creates the objects in order; the test fails at the first one refused.
func (e *Env) Create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}
