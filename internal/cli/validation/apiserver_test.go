package validation_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/validation"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// testdata holds the files of validate's golden tests: every served version, valid and
// refused for each reason validate knows.
var testdata = filepath.Join("..", "..", "..", "cmd", "intentguard", "testdata", "validate")

// TestValidateAgreesWithTheAPIServer creates, in file order and with strict field
// validation, every intentguard object of the golden files on a real kube-apiserver
// whose CRDs convert and whose admission webhook runs: what validate refuses offline is
// exactly what the API server refuses.
func TestValidateAgreesWithTheAPIServer(t *testing.T) {
	ctx := context.Background()
	docs, err := input.ReadFiles([]string{filepath.Join(testdata, "valid"), filepath.Join(testdata, "invalid")}, nil)
	unreadable, ok := input.ParseErrors(err)
	if err != nil && !ok {
		t.Fatal(err)
	}
	report, err := validation.Validate(ctx, docs, unreadable, "default")
	if err != nil {
		t.Fatal(err)
	}
	outcome := map[input.Source]validation.Object{}
	for _, o := range report.Objects {
		outcome[o.Source] = o
	}

	_, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true, Webhooks: true})
	for _, ns := range []string{"shop", "kafka"} {
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	refusals := 0
	for _, d := range docs {
		if d.Object.GroupVersionKind().Group != v2beta1.GroupVersion.Group {
			continue
		}
		o, ok := outcome[d.Source]
		if !ok {
			t.Fatalf("%s is not in the report", d.Source)
		}
		u := d.Object.DeepCopy()
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		// The webhook compares with its cache, which follows the creates within
		// milliseconds: a dry run is repeated until the answer settles.
		var refusal error
		deadline := time.Now().Add(5 * time.Second)
		for {
			refusal = kube.Create(ctx, u.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict"))
			if (refusal != nil) != o.Valid() || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		switch {
		case refusal == nil && !o.Valid():
			t.Errorf("%s: the API server accepts %s, validate refuses it: %v", d.Source, o.Name, o.Findings)
		case refusal != nil && o.Valid():
			t.Errorf("%s: the API server refuses %s, validate accepts it: %v", d.Source, o.Name, refusal)
		case refusal == nil:
			if err := kube.Create(ctx, u, client.FieldValidation("Strict")); err != nil {
				t.Fatalf("%s: creating %s: %v", d.Source, o.Name, err)
			}
		default:
			refusals++
			t.Logf("%s: both refuse %s: %v", d.Source, o.Name, refusal)
		}
	}
	if refusals == 0 {
		t.Error("no document was refused: the files no longer test refusals")
	}
}
