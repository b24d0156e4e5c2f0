package controlplane

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api"
)

// ForTest starts a control plane for t, stops it when t ends, and returns it with an
// administrator's client that knows Kubernetes' kinds and every served version of
// intentguard's. It fails t when the control plane cannot start.
func ForTest(t testing.TB, opts Options) (*Cluster, client.Client) {
	t.Helper()
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, api.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	kube, err := client.New(c.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c, kube
}
