package istiocrd_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
	"github.com/intentguard/intentguard/internal/point/istio/istiocrd"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// TestEmbeddedCRDIsIstios: the embedded CRD is the one of the istio.io/api version in
// go.mod (run go generate ./internal/point/istio/istiocrd after changing it).
func TestEmbeddedCRDIsIstios(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("locating istio.io/api: %v", err)
	}
	all, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("authorizationpolicies.security.istio.io.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(embedded, []byte("\n"))
	if !bytes.Contains(all, bytes.TrimSpace(body)) {
		t.Fatal("the embedded AuthorizationPolicy CRD differs from istio.io/api's: run go generate ./internal/point/istio/istiocrd")
	}
	crd, err := istiocrd.AuthorizationPolicy()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, v := range crd.Spec.Versions {
		served[v.Name] = v.Served
	}
	if crd.Spec.Group != "security.istio.io" || crd.Spec.Names.Kind != "AuthorizationPolicy" || !served["v1"] {
		t.Fatalf("CRD %s serves %v", crd.Name, served)
	}
}

// TestPoliciesOnARealAPIServer installs the CRD on a kube-apiserver (twice: Install is
// idempotent), creates compiled policies of every mesh scenario, and reads them back
// unchanged: equal to the desired ones (so an unchanged server costs no write) and owned.
func TestPoliciesOnARealAPIServer(t *testing.T) {
	ctx := context.Background()
	lc, err := controlplane.Start(ctx, controlplane.Options{WithoutControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Stop() })
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, securityv1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(lc.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := istiocrd.Install(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	scenarios := map[string]bool{}
	for seed := uint64(0); seed < 12; seed++ {
		in, scenario := authztest.RandomInput(rand.New(rand.NewPCG(seed, 3)), "corp.example")
		scenarios[scenario] = true
		res, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, desired := range res.Policies {
			var existing securityv1.AuthorizationPolicy
			err := c.Get(ctx, client.ObjectKeyFromObject(desired), &existing)
			switch {
			case err == nil:
				update := desired.DeepCopy()
				update.ResourceVersion = existing.ResourceVersion
				err = c.Update(ctx, update)
			default:
				err = c.Create(ctx, desired.DeepCopy())
			}
			if err != nil {
				t.Fatalf("seed %d (%s): writing %s: %v", seed, scenario, desired.Name, err)
			}
			var back securityv1.AuthorizationPolicy
			if err := c.Get(ctx, client.ObjectKeyFromObject(desired), &back); err != nil {
				t.Fatal(err)
			}
			if !authz.UpToDate(desired, &back) || !authz.Owned(&back, in.Server.Ref) {
				t.Fatalf("seed %d (%s): %s read back differs:\nwant %v\ngot  %v", seed, scenario, desired.Name, desired.Spec.String(), back.Spec.String())
			}
		}
	}
	if len(scenarios) != 3 {
		t.Fatalf("scenarios covered: %v", scenarios)
	}
}
