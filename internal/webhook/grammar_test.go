package webhook_test

import (
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/webhook"
)

// schemaAt returns the schema of a field of a served version of a CRD, by a path of
// property names where "[]" steps into list items.
func schemaAt(t *testing.T, crdName, version string, path ...string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	crds, err := controlplane.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		if crd.Name != crdName {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != version {
				continue
			}
			s := *v.Schema.OpenAPIV3Schema
			for _, p := range path {
				if p == "[]" {
					s = *s.Items.Schema
					continue
				}
				next, ok := s.Properties[p]
				if !ok {
					t.Fatalf("%s %s: no field %s", crdName, version, strings.Join(path, "."))
				}
				s = next
			}
			return s
		}
	}
	t.Fatalf("no CRD %s version %s", crdName, version)
	return apiextensionsv1.JSONSchemaProps{}
}

// admits applies a string schema's length bounds, pattern and enum as the API server
// does; CEL rules are checked on a real API server in test/e2e.
func admits(s apiextensionsv1.JSONSchemaProps, v string) bool {
	if s.MinLength != nil && int64(len(v)) < *s.MinLength || s.MaxLength != nil && int64(len(v)) > *s.MaxLength {
		return false
	}
	if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(v) {
		return false
	}
	if len(s.Enum) > 0 {
		for _, e := range s.Enum {
			if string(e.Raw) == `"`+v+`"` {
				return true
			}
		}
		return false
	}
	return true
}

// TestGrammarOfNamedThings checks, for every served version, that each string naming
// something in another system admits that system's names and nothing else.
func TestGrammarOfNamedThings(t *testing.T) {
	const ci, ps = "clientintents.k8s.otterize.com", "protectedservices.k8s.otterize.com"
	type schemaField struct {
		crd, version string
		path         []string
	}
	paths := func(v2, v1a3, v1a2 []string) []schemaField {
		var out []schemaField
		for _, v := range []string{"v2beta1", "v2alpha1"} {
			out = append(out, schemaField{ci, v, v2})
		}
		for _, v := range []string{"v1alpha3", "v1beta1"} {
			out = append(out, schemaField{ci, v, v1a3})
		}
		return append(out, schemaField{ci, "v1alpha2", v1a2})
	}
	httpPath := paths([]string{"spec", "targets", "[]", "service", "http", "[]", "path"}, []string{"spec", "calls", "[]", "HTTPResources", "[]", "path"}, []string{"spec", "calls", "[]", "resources", "[]", "path"})
	method := paths([]string{"spec", "targets", "[]", "kubernetes", "http", "[]", "methods", "[]"}, []string{"spec", "calls", "[]", "HTTPResources", "[]", "methods", "[]"}, []string{"spec", "calls", "[]", "resources", "[]", "methods", "[]"})
	topic := paths([]string{"spec", "targets", "[]", "kafka", "topics", "[]", "name"}, []string{"spec", "calls", "[]", "kafkaTopics", "[]", "name"}, []string{"spec", "calls", "[]", "topics", "[]", "name"})
	kind := paths([]string{"spec", "targets", "[]", "kubernetes", "kind"}, []string{"spec", "calls", "[]", "kind"}, []string{"spec", "service", "name"})[:4]
	for _, v := range []string{"v2beta1", "v2alpha1", "v1beta1", "v1alpha3", "v1alpha2"} {
		kind = append(kind, schemaField{ps, v, []string{"spec", "kind"}})
	}
	domain := paths([]string{"spec", "targets", "[]", "internet", "domains", "[]"}, []string{"spec", "calls", "[]", "internet", "domains", "[]"}, nil)[:4]
	type spec = v2beta1.ClientIntentsSpec
	type target = v2beta1.Target
	one := func(t target) spec { return spec{Workload: v2beta1.Workload{Name: "c"}, Targets: []target{t}} }
	for _, tc := range []struct {
		fields    []schemaField
		inSpec    func(string) spec
		good, bad []string
	}{
		{httpPath, func(v string) spec {
			return one(target{Service: &v2beta1.ServiceTarget{Name: "web", HTTP: []v2beta1.HTTPTarget{{Path: v}}}})
		}, []string{"/", "/api/v1", "/v1/*", "/a%20b", "/~user?x=1"}, []string{"", "api", "*", "/a b", "/a\tb", "/\x00", "/é", "/" + strings.Repeat("a", 2048)}},
		{method, nil, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}, []string{"get", "FETCH", "", "GET "}},
		{topic, func(v string) spec {
			return one(target{Kafka: &v2beta1.KafkaTarget{Name: "k", Topics: []v2beta1.KafkaTopic{{Name: v}}}})
		}, []string{"*", "orders", "orders.v1_x-y", "orders-*", strings.Repeat("t", 249), strings.Repeat("t", 249) + "*", "..."}, []string{"", "orders topic", "a/b", "ü", strings.Repeat("t", 250), "**", "a*b"}},
		{kind, func(v string) spec { return one(target{Kubernetes: &v2beta1.KubernetesTarget{Name: "web", Kind: v}}) }, []string{"Deployment", "StatefulSet", "Rollout2"}, []string{"deployment", "Deploy ment", "Deployment.apps", "1Job", strings.Repeat("K", 64)}},
		{domain, func(v string) spec { return one(target{Internet: &v2beta1.InternetTarget{Domains: []string{v}}}) }, []string{"example.com", "*.example.com", "api.example.com.", "a-b.c"}, []string{"api.*.example.com", "bad domain!", "-a.com", "*", strings.Repeat("a", 64) + ".com"}},
	} {
		for _, f := range tc.fields {
			s := schemaAt(t, f.crd, f.version, f.path...)
			for _, v := range tc.good {
				if !admits(s, v) {
					t.Errorf("%s %s %s refuses %q", f.crd, f.version, strings.Join(f.path, "."), v)
				}
			}
			for _, v := range tc.bad {
				if admits(s, v) {
					t.Errorf("%s %s %s admits %q", f.crd, f.version, strings.Join(f.path, "."), v)
				}
			}
		}
		// The webhook's check of a spec no schema saw (a v1alpha2 file's annotation)
		// draws the same line.
		if tc.inSpec == nil {
			continue
		}
		for _, v := range tc.good {
			if errs := webhook.ValidateGrammar(tc.inSpec(v), field.NewPath("spec")); len(errs) > 0 {
				t.Errorf("ValidateGrammar refuses %q: %v", v, errs)
			}
		}
		for _, v := range tc.bad {
			if errs := webhook.ValidateGrammar(tc.inSpec(v), field.NewPath("spec")); len(errs) == 0 {
				t.Errorf("ValidateGrammar admits %q", v)
			}
		}
	}
	ports := webhook.ValidateGrammar(one(target{Internet: &v2beta1.InternetTarget{IPs: []string{"10.0.0.0/8", "300.1.1.1", "::1"}, Ports: []int32{443, 0, 65536}}}), field.NewPath("spec")).ToAggregate()
	for _, want := range []string{`spec.targets[0].internet.ips[1]: Invalid value: "300.1.1.1"`, "spec.targets[0].internet.ports[1]: Invalid value: 0", "spec.targets[0].internet.ports[2]: Invalid value: 65536"} {
		if ports == nil || !strings.Contains(ports.Error(), want) {
			t.Errorf("ValidateGrammar: %v, want %q", ports, want)
		}
	}
	if n := strings.Count(ports.Error(), "Invalid value"); n != 3 {
		t.Errorf("ValidateGrammar: %d errors, want 3: %v", n, ports)
	}
	empty := webhook.ValidateGrammar(one(target{Internet: &v2beta1.InternetTarget{Ports: []int32{443}}}), field.NewPath("spec")).ToAggregate()
	if empty == nil || !strings.Contains(empty.Error(), "spec.targets[0].internet: Required value: an internet target needs at least one domain or ip") {
		t.Errorf("ValidateGrammar on an internet target without a destination: %v", empty)
	}
}
