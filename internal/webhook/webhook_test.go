package webhook

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

func intents(name, workload, kind string, targets ...v2beta1.Target) v2beta1.ClientIntents {
	return v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: workload, Kind: kind}, Targets: targets},
	}
}

// TestOneClientIntentsPerWorkload: a workload's calls live in one ClientIntents; an empty
// kind names every kind, so it collides with any kind of the same name.
func TestOneClientIntentsPerWorkload(t *testing.T) {
	existing := []v2beta1.ClientIntents{intents("a", "client", "Deployment"), intents("b", "batch", "")}
	for _, tc := range []struct {
		ci   v2beta1.ClientIntents
		want string
	}{
		{intents("new", "client", "Deployment"), `ClientIntents "a" in namespace "ns" already declares the calls of workload "client" (kind Deployment)`},
		{intents("new", "client", ""), `ClientIntents "a"`},
		{intents("new", "batch", "CronJob"), `ClientIntents "b" in namespace "ns" already declares the calls of workload "batch";`},
		{intents("new", "client", "StatefulSet"), ""},
		{intents("new", "other", ""), ""},
		{intents("a", "client", "Deployment"), ""}, // itself, on update
	} {
		errs := ValidateClientIntents(&tc.ci, existing, Paths{})
		got := errs.ToAggregate()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s %s/%s refused: %v", tc.ci.Name, tc.ci.Spec.Workload.Kind, tc.ci.Spec.Workload.Name, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s %s/%s: %v, want %q", tc.ci.Name, tc.ci.Spec.Workload.Kind, tc.ci.Spec.Workload.Name, got, tc.want)
		}
	}
	deleting := intents("a", "client", "Deployment")
	deleting.DeletionTimestamp = &metav1.Time{}
	if errs := ValidateClientIntents(new(intents("new", "client", "")), []v2beta1.ClientIntents{deleting}, Paths{}); len(errs) > 0 {
		t.Errorf("an object being deleted blocks its replacement: %v", errs)
	}
}

// TestTargetNamespaces: the part after the dot must be a namespace name.
func TestTargetNamespaces(t *testing.T) {
	long := strings.Repeat("a", 64)
	for name, ok := range map[string]bool{
		"server": true, "server.prod": true, "server." + long: false, long + ".prod": false,
	} {
		ci := intents("x", "c", "",
			v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name}},
			v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}},
			v2beta1.Target{Kafka: &v2beta1.KafkaTarget{Name: name}},
			v2beta1.Target{Internet: &v2beta1.InternetTarget{IPs: []string{"10.0.0.0/8"}}})
		errs := ValidateClientIntents(&ci, nil, Paths{})
		if ok && len(errs) > 0 {
			t.Errorf("%q refused: %v", name, errs)
		}
		if !ok && len(errs) != 3 {
			t.Errorf("%q: %d errors, want one per named target: %v", name, len(errs), errs)
		}
	}
}

// TestOneProtectedServicePerServer mirrors the ClientIntents rule for ProtectedServices.
func TestOneProtectedServicePerServer(t *testing.T) {
	ps := func(name, server, kind string) v2beta1.ProtectedService {
		return v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: v2beta1.ProtectedServiceSpec{Name: server, Kind: kind}}
	}
	existing := []v2beta1.ProtectedService{ps("p", "server", "")}
	if errs := ValidateProtectedService(new(ps("q", "server", "Deployment")), existing); len(errs) != 1 || !strings.Contains(errs[0].Error(), `ProtectedService "p" in namespace "ns" already protects "server"`) {
		t.Errorf("duplicate: %v", errs)
	}
	if errs := ValidateProtectedService(new(ps("q", "other", "")), existing); len(errs) != 0 {
		t.Errorf("different server: %v", errs)
	}
}

// TestPathsOfV1Files: errors about a v1 file name its fields, spec.service and spec.calls.
func TestPathsOfV1Files(t *testing.T) {
	ci := intents("new", "client", "", v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web." + strings.Repeat("n", 64)}})
	errs := ValidateClientIntents(&ci, []v2beta1.ClientIntents{intents("a", "client", "")}, Paths{V1: true})
	if len(errs) != 2 || errs[0].Field != "spec.calls[0].name" || errs[1].Field != "spec.service" {
		t.Errorf("%v", errs)
	}
	errs = ValidateClientIntents(&ci, []v2beta1.ClientIntents{intents("a", "client", "")}, Paths{})
	if len(errs) != 2 || errs[0].Field != "spec.targets[0].service.name" || errs[1].Field != "spec.workload" {
		t.Errorf("%v", errs)
	}
}

// TestKeptTargetsOnlyWhereTheyWere: a target of a kind intentguard does not enforce, or a
// field it does not know, is refused in a new object and when added by an update, and
// left alone in an object that already has it, so that objects written upstream can
// still be edited.
func TestKeptTargetsOnlyWhereTheyWere(t *testing.T) {
	raw := func(s string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(s)} }
	sql := v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{"sql": raw(`{"name":"pg"}`)}}
	db := v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{v2beta1.KeptV1alpha3Call: raw(`{"name":"db","type":"database"}`)}}
	old2 := v2beta1.Target{Unsupported: map[string]apiextensionsv1.JSON{v2beta1.KeptV1alpha2Call: raw(`{"name":"svc:k","type":"kafka"}`)}}
	extra := v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web"}, Unsupported: map[string]apiextensionsv1.JSON{"tiemout": raw(`3`)}}
	web := v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web"}}
	for _, tc := range []struct {
		name     string
		old, new []v2beta1.Target
		paths    Paths
		want     string
	}{
		{"new sql target", nil, []v2beta1.Target{web, sql}, Paths{}, "spec.targets[1]: Forbidden: sql targets are not supported"},
		{"new database call", nil, []v2beta1.Target{db}, Paths{V1: true}, "spec.calls[0]: Forbidden: calls of type database are not enforced by intentguard"},
		{"new v1alpha2 call", nil, []v2beta1.Target{old2}, Paths{V1: true}, "spec.calls[0]: Forbidden: a kafka call names the broker workload, not a Service"},
		{"unknown field", nil, []v2beta1.Target{extra}, Paths{}, "spec.targets[0]: Forbidden: unknown fields tiemout"},
		{"empty target", nil, []v2beta1.Target{{}}, Paths{}, "exactly one of kubernetes, service, kafka or internet"},
		{"added by an update", []v2beta1.Target{web}, []v2beta1.Target{web, db}, Paths{V1: true}, "spec.calls[1]: Forbidden: calls of type database"},
		{"kept on update", []v2beta1.Target{db, sql}, []v2beta1.Target{web, sql, db}, Paths{}, ""},
		{"supported targets", nil, []v2beta1.Target{web}, Paths{}, ""},
	} {
		ci := intents("x", "c", "", tc.new...)
		var old *v2beta1.ClientIntents
		if tc.old != nil {
			o := intents("x", "c", "", tc.old...)
			old = &o
		}
		got := ValidateKeptTargets(&ci, old, tc.paths).ToAggregate()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s: refused: %v", tc.name, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, got, tc.want)
		}
	}
}

// TestHTTPPathsByIstioRules: a path Istio would refuse or read otherwise (a "*" inside
// it, a template that is not a whole segment, {**} before another template) is refused
// in a new object and when added by an update, and left alone where the stored object
// already has it.
func TestHTTPPathsByIstioRules(t *testing.T) {
	svc := func(paths ...string) v2beta1.Target {
		var hs []v2beta1.HTTPTarget
		for _, p := range paths {
			hs = append(hs, v2beta1.HTTPTarget{Path: p, Methods: []v2beta1.HTTPMethod{"GET", "HEAD"}})
		}
		return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "web", HTTP: hs}}
	}
	k8s := v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: "api", HTTP: []v2beta1.HTTPTarget{{Path: "/v1/{**}/{*}"}}}}
	for _, tc := range []struct {
		name     string
		old, new []v2beta1.Target
		paths    Paths
		want     string
	}{
		{"exact, prefix and templates", nil, []v2beta1.Target{svc("/client-path", "/api/*", "/users/{*}/orders", "/files/{**}")}, Paths{}, ""},
		{"star inside", nil, []v2beta1.Target{svc("/ok", "/a*b")}, Paths{}, `spec.targets[0].service.http[1].path: Invalid value: "/a*b"`},
		{"template not a whole segment", nil, []v2beta1.Target{svc("/files/x{*}")}, Paths{V1: true}, `spec.calls[0].HTTPResources[0].path: Invalid value: "/files/x{*}"`},
		{"v1alpha2 names them resources", nil, []v2beta1.Target{svc("/ok", "/files/{id}")}, Paths{V1: true, V1alpha2: true}, `spec.calls[0].resources[1].path: Invalid value: "/files/{id}"`},
		{"{**} before a template", nil, []v2beta1.Target{svc(), k8s}, Paths{}, `spec.targets[1].kubernetes.http[0].path: Invalid value: "/v1/{**}/{*}": {**} must be the last template`},
		{"bad method", nil, []v2beta1.Target{{Service: &v2beta1.ServiceTarget{Name: "web", HTTP: []v2beta1.HTTPTarget{{Path: "/", Methods: []v2beta1.HTTPMethod{"FETCH"}}}}}}, Paths{}, `spec.targets[0].service.http[0].methods[0]: Unsupported value: "FETCH"`},
		{"added by an update", []v2beta1.Target{svc("/ok")}, []v2beta1.Target{svc("/ok", "/a*b")}, Paths{}, `"/a*b"`},
		{"kept on update", []v2beta1.Target{svc("/a*b")}, []v2beta1.Target{svc("/a*b", "/ok")}, Paths{}, ""},
	} {
		ci := intents("x", "c", "", tc.new...)
		var old *v2beta1.ClientIntents
		if tc.old != nil {
			o := intents("x", "c", "", tc.old...)
			old = &o
		}
		got := ValidateHTTPPaths(&ci, old, tc.paths).ToAggregate()
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s: refused: %v", tc.name, got)
		case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, got, tc.want)
		}
	}
}
