package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// TestSnapshotThenValidate runs the commands as a user would: a snapshot of a cluster
// to a file (logging on standard error only), to standard output, and the file
// validated.
func TestSnapshotThenValidate(t *testing.T) {
	lc, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	ctx := context.Background()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}, Spec: v2beta1.ClientIntentsSpec{
		Workload: v2beta1.Workload{Name: "checkout"}, Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "orders"}}}}}); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "shop.yaml")
	code, out, errOut := intentguard(t, "", "snapshot", "-o", file, "--kubeconfig", lc.Kubeconfig, "-n", "shop")
	if code != output.ExitOK || out != "" || !strings.Contains(errOut, "snapshot written") {
		t.Fatalf("snapshot: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(written), "kind: ClientIntents") {
		t.Errorf("the snapshot has no ClientIntents:\n%s", written)
	}

	code, out, _ = intentguard(t, "", "snapshot", "-o", "-", "--kubeconfig", lc.Kubeconfig, "-n", "shop")
	if code != output.ExitOK || !strings.Contains(out, "name: checkout") {
		t.Errorf("snapshot to standard output: exit code %d, stdout:\n%s", code, out)
	}

	code, out, errOut = intentguard(t, "", "validate", file)
	if code != output.ExitOK || !strings.HasPrefix(out, "1 object checked, all valid") {
		t.Errorf("validate of the snapshot: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, _, errOut = intentguard(t, "", "snapshot", "-o", file, "--kubeconfig", filepath.Join(t.TempDir(), "absent"))
	if code != output.ExitUsage || !strings.Contains(errOut, "error:") {
		t.Errorf("snapshot of no cluster: exit code %d, stderr %q", code, errOut)
	}
}
