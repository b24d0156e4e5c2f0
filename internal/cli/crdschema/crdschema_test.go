package crdschema_test

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/intentguard/intentguard/internal/cli/crdschema"
)

func TestEveryServedVersionCompiles(t *testing.T) {
	kinds, err := crdschema.Kinds()
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1"}
	for kind, want := range map[string][]string{"ClientIntents": all, "ProtectedService": all, "KafkaServerConfig": {"v2beta1"}} {
		got := slices.Sorted(slices.Values(kinds[schema.GroupKind{Group: "k8s.otterize.com", Kind: kind}]))
		if !slices.Equal(got, want) {
			t.Errorf("%s versions %v, want %v", kind, got, want)
		}
	}
}

func TestDefaultsPruningAndRules(t *testing.T) {
	v, ok, err := crdschema.For(schema.GroupVersionKind{Group: "k8s.otterize.com", Version: "v2beta1", Kind: "KafkaServerConfig"})
	if err != nil || !ok || !v.Namespaced {
		t.Fatalf("KafkaServerConfig v2beta1: %v, served %v", err, ok)
	}
	obj := map[string]any{
		"apiVersion": "k8s.otterize.com/v2beta1", "kind": "KafkaServerConfig",
		"metadata": map[string]any{"name": "k", "namespace": "kafka"},
		"spec": map[string]any{
			"workload": map[string]any{"name": "kafka"}, "addr": "kafka:9092", "extra": true,
			"topics": []any{map[string]any{"topic": "*", "pattern": "prefix"}},
		},
	}
	v.Default(obj)
	if got := obj["spec"].(map[string]any)["topics"].([]any)[0].(map[string]any)["intentsRequired"]; got != true {
		t.Errorf("intentsRequired %v, want the default true", got)
	}
	if pruned := v.Prune(obj); !slices.Equal(pruned, []string{"spec.extra"}) {
		t.Errorf("pruned %v, want spec.extra", pruned)
	}
	schemaErrs, celErrs := v.Validate(context.Background(), obj)
	if len(schemaErrs) != 0 || len(celErrs) != 1 || celErrs[0].Field != "spec.topics[0]" {
		t.Errorf("schema errors %v, CEL errors %v: want one CEL error on spec.topics[0]", schemaErrs, celErrs)
	}
	topic := obj["spec"].(map[string]any)["topics"].([]any)[0].(map[string]any)
	topic["pattern"] = "literal"
	if _, celErrs := v.Validate(context.Background(), obj); len(celErrs) != 0 {
		t.Errorf("a literal * is refused: %v", celErrs)
	}
	if _, ok, _ := crdschema.For(schema.GroupVersionKind{Group: "k8s.otterize.com", Version: "v1alpha1", Kind: "ClientIntents"}); ok {
		t.Error("v1alpha1 is served")
	}
}
