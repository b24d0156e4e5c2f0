package webhook_test

import (
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/intentguard/intentguard/internal/localcluster"
)

// schemaAt returns the schema of a field of a served version of a CRD, by a path of
// property names where "[]" steps into list items.
func schemaAt(t *testing.T, crdName, version string, path ...string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	crds, err := localcluster.CRDs()
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
	type field struct {
		crd, version string
		path         []string
	}
	paths := func(v2, v1a3, v1a2 []string) []field {
		var out []field
		for _, v := range []string{"v2beta1", "v2alpha1"} {
			out = append(out, field{ci, v, v2})
		}
		for _, v := range []string{"v1alpha3", "v1beta1"} {
			out = append(out, field{ci, v, v1a3})
		}
		return append(out, field{ci, "v1alpha2", v1a2})
	}
	httpPath := paths([]string{"spec", "targets", "[]", "service", "http", "[]", "path"}, []string{"spec", "calls", "[]", "HTTPResources", "[]", "path"}, []string{"spec", "calls", "[]", "resources", "[]", "path"})
	method := paths([]string{"spec", "targets", "[]", "kubernetes", "http", "[]", "methods", "[]"}, []string{"spec", "calls", "[]", "HTTPResources", "[]", "methods", "[]"}, []string{"spec", "calls", "[]", "resources", "[]", "methods", "[]"})
	topic := paths([]string{"spec", "targets", "[]", "kafka", "topics", "[]", "name"}, []string{"spec", "calls", "[]", "kafkaTopics", "[]", "name"}, []string{"spec", "calls", "[]", "topics", "[]", "name"})
	kind := paths([]string{"spec", "targets", "[]", "kubernetes", "kind"}, []string{"spec", "calls", "[]", "kind"}, []string{"spec", "service", "name"})[:4]
	for _, v := range []string{"v2beta1", "v2alpha1", "v1beta1", "v1alpha3", "v1alpha2"} {
		kind = append(kind, field{ps, v, []string{"spec", "kind"}})
	}
	domain := paths([]string{"spec", "targets", "[]", "internet", "domains", "[]"}, []string{"spec", "calls", "[]", "internet", "domains", "[]"}, nil)[:4]
	for _, tc := range []struct {
		fields    []field
		good, bad []string
	}{
		{httpPath, []string{"/", "/api/v1", "/v1/*", "/a%20b", "/~user?x=1"}, []string{"", "api", "*", "/a b", "/a\tb", "/\x00", "/é", "/" + strings.Repeat("a", 2048)}},
		{method, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}, []string{"get", "FETCH", "", "GET "}},
		{topic, []string{"*", "orders", "orders.v1_x-y", "orders-*", strings.Repeat("t", 249), strings.Repeat("t", 249) + "*", "..."}, []string{"", "orders topic", "a/b", "ü", strings.Repeat("t", 250), "**", "a*b"}},
		{kind, []string{"Deployment", "StatefulSet", "Rollout2"}, []string{"deployment", "Deploy ment", "Deployment.apps", "1Job", strings.Repeat("K", 64)}},
		{domain, []string{"example.com", "*.example.com", "api.example.com.", "a-b.c"}, []string{"api.*.example.com", "bad domain!", "-a.com", "*", strings.Repeat("a", 64) + ".com"}},
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
	}
}
