package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
)

var servedVersions = []string{"v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1"}

// applyDoc creates the object a YAML file describes, in whatever version it is written.
func applyDoc(ns, doc string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", doc, err)
	}
	u.SetNamespace(ns)
	return u, kube.Create(context.Background(), u)
}

// getAs reads an object in the given version, as `kubectl get kind.version.group` does.
func getAs(t *testing.T, kind, version, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: v2beta1.GroupVersion.Group, Version: version, Kind: kind})
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatalf("reading %s %s/%s as %s: %v", kind, ns, name, version, err)
	}
	return u
}

func specJSON(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func yamlJSON(t *testing.T, doc string) string {
	t.Helper()
	b, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestEveryVersionIsAccepted applies a file in each shape users have, reads it back in
// every served version, writes each read form back unchanged, and checks that the stored
// v2beta1 object means the same throughout.
func TestEveryVersionIsAccepted(t *testing.T) {
	ns := env.Namespace(t, "versions")
	for _, tc := range []struct{ name, doc, hub string }{
		{"v1alpha2", `
apiVersion: k8s.otterize.com/v1alpha2
kind: ClientIntents
metadata: {name: seed-era}
spec:
  service: {name: client-a}
  calls:
  - name: server
  - name: svc:nginx.web
  - {name: server2, type: http, resources: [{path: /api, methods: [GET]}]}
  - {name: kafka.kafka, type: kafka, topics: [{name: orders, operations: [consume, describe]}]}
`, `{workload: {name: client-a}, targets: [
  {kubernetes: {name: server}}, {service: {name: nginx.web}},
  {kubernetes: {name: server2, http: [{path: /api, methods: [GET]}]}},
  {kafka: {name: kafka.kafka, topics: [{name: orders, operations: [consume, describe]}]}}]}`},
		{"v1alpha3", `
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: alpha3}
spec:
  service: {name: client-b, kind: Deployment}
  calls:
  - {name: server.ns2, kind: StatefulSet, type: http, HTTPResources: [{path: /api, methods: [GET]}]}
  - name: svc:nginx
  - {name: kafka.kafka, type: kafka, kafkaTopics: [{name: orders, operations: [produce]}]}
  - {type: internet, internet: {domains: [api.example.com], ips: [1.2.3.0/24], ports: [443]}}
`, `{workload: {name: client-b, kind: Deployment}, targets: [
  {kubernetes: {name: server.ns2, kind: StatefulSet, http: [{path: /api, methods: [GET]}]}},
  {service: {name: nginx}},
  {kafka: {name: kafka.kafka, topics: [{name: orders, operations: [produce]}]}},
  {internet: {domains: [api.example.com], ips: [1.2.3.0/24], ports: [443]}}]}`},
		{"v1beta1", `
apiVersion: k8s.otterize.com/v1beta1
kind: ClientIntents
metadata: {name: beta1}
spec:
  service: {name: client-c}
  calls:
  - {name: plain, kind: ""}
  - {name: svc:api.prod, type: http, HTTPResources: [{path: "/v1/*"}]}
`, `{workload: {name: client-c}, targets: [{kubernetes: {name: plain}}, {service: {name: api.prod, http: [{path: "/v1/*"}]}}]}`},
		{"v2alpha1", `
apiVersion: k8s.otterize.com/v2alpha1
kind: ClientIntents
metadata: {name: v2alpha}
spec:
  workload: {name: client-d, kind: Deployment}
  targets:
  - kubernetes: {name: server, kind: Deployment}
  - internet: {domains: ["*.example.com"], ports: [443]}
`, `{workload: {name: client-d, kind: Deployment}, targets: [{kubernetes: {name: server, kind: Deployment}}, {internet: {domains: ["*.example.com"], ports: [443]}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := applyDoc(ns, tc.doc)
			if err != nil {
				t.Fatalf("applying the %s file: %v", tc.name, err)
			}
			want := yamlJSON(t, tc.hub)
			if got := specJSON(t, getAs(t, "ClientIntents", "v2beta1", ns, u.GetName())); got != want {
				t.Fatalf("stored as v2beta1:\n%s\nwant\n%s", got, want)
			}
			for _, version := range servedVersions {
				read := getAs(t, "ClientIntents", version, ns, u.GetName())
				if read.GetAPIVersion() != "k8s.otterize.com/"+version {
					t.Errorf("asked for %s, got %s", version, read.GetAPIVersion())
				}
				if err := kube.Update(context.Background(), read); err != nil {
					t.Fatalf("writing back the %s form: %v", version, err)
				}
				if got := specJSON(t, getAs(t, "ClientIntents", "v2beta1", ns, u.GetName())); got != want {
					t.Errorf("after writing back the %s form %s, v2beta1 reads\n%s\nwant\n%s", version, specJSON(t, read), got, want)
				}
			}
		})
	}

	// Specific forms users look for when they read in an old version.
	a3 := getAs(t, "ClientIntents", "v1alpha3", ns, "v2alpha")
	if got, want := specJSON(t, a3), yamlJSON(t, `{service: {name: client-d, kind: Deployment}, calls: [{name: server, kind: Deployment}, {type: internet, internet: {domains: ["*.example.com"], ports: [443]}}]}`); got != want {
		t.Errorf("v2alpha1 file read as v1alpha3:\n%s\nwant\n%s", got, want)
	}
	a2 := getAs(t, "ClientIntents", "v1alpha2", ns, "alpha3")
	if got, want := specJSON(t, a2), yamlJSON(t, `{service: {name: client-b}, calls: [{name: server.ns2, type: http, resources: [{path: /api, methods: [GET]}]}, {name: "svc:nginx"}, {name: kafka.kafka, type: kafka, topics: [{name: orders, operations: [produce]}]}]}`); got != want {
		t.Errorf("v1alpha3 file read as v1alpha2:\n%s\nwant\n%s", got, want)
	}
	if a2.GetAnnotations()["intentguard.dev/v2beta1-spec"] == "" {
		t.Error("v1alpha2 form of an object with kinds and internet targets does not keep them in its annotation")
	}

	// ProtectedService: the same shape in every version.
	if _, err := applyDoc(ns, `{apiVersion: k8s.otterize.com/v1alpha2, kind: ProtectedService, metadata: {name: guarded}, spec: {name: server, kind: StatefulSet}}`); err != nil {
		t.Fatalf("applying a v1alpha2 ProtectedService: %v", err)
	}
	for _, version := range servedVersions {
		ps := getAs(t, "ProtectedService", version, ns, "guarded")
		if got, want := specJSON(t, ps), `{"kind":"StatefulSet","name":"server"}`; got != want {
			t.Errorf("ProtectedService read as %s: %s, want %s", version, got, want)
		}
	}
}

// TestStatusSurvivesOldVersionWrites sets a status, then edits the spec in v1alpha3: the
// conditions, which v1 files never had, are still there.
func TestStatusSurvivesOldVersionWrites(t *testing.T) {
	ns := env.Namespace(t, "versions-status")
	ci := env.ApplyIntents(t, ns, "metadata: {name: c}\nspec: {workload: {name: client}, targets: [{service: {name: web}}]}\n")
	ci.Status.ObservedGeneration = ci.Generation
	ci.Status.TargetCount = 1
	apimeta.SetStatusCondition(&ci.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Enforced", Message: "ok"})
	if err := kube.Status().Update(context.Background(), ci); err != nil {
		t.Fatal(err)
	}
	old := getAs(t, "ClientIntents", "v1alpha3", ns, "c")
	calls, _, _ := unstructured.NestedSlice(old.Object, "spec", "calls")
	calls = append(calls, map[string]any{"name": "other"})
	if err := unstructured.SetNestedSlice(old.Object, calls, "spec", "calls"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Update(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	var got v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Targets) != 2 || got.Spec.Targets[1].Kubernetes == nil || got.Spec.Targets[1].Kubernetes.Name != "other" {
		t.Errorf("spec after the v1alpha3 edit: %+v", got.Spec)
	}
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, "Ready") || got.Status.TargetCount != 1 {
		t.Errorf("status after the v1alpha3 edit: %+v", got.Status)
	}
}

// expectRefused applies doc and fails unless the API server refuses it with an error
// containing msg and creates nothing.
func expectRefused(t *testing.T, ns, doc, msg string) {
	t.Helper()
	u, err := applyDoc(ns, doc)
	if err == nil {
		t.Fatalf("accepted:\n%s", doc)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error\n  %v\nwant it to contain\n  %s", err, msg)
	}
	probe := &unstructured.Unstructured{}
	probe.SetGroupVersionKind(u.GroupVersionKind())
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, probe); !apierrors.IsNotFound(err) {
		t.Errorf("the rejected object exists after all (get: %v)", err)
	}
}

// TestInvalidFilesAreRejected applies malformed files and checks each is refused with a
// message that names the problem, and that nothing was created.
func TestInvalidFilesAreRejected(t *testing.T) {
	ns := env.Namespace(t, "invalid-files")
	if _, err := applyDoc(ns, `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: first}, spec: {workload: {name: client, kind: Deployment}}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := applyDoc(ns, `{apiVersion: k8s.otterize.com/v2beta1, kind: ProtectedService, metadata: {name: first}, spec: {name: server}}`); err != nil {
		t.Fatal(err)
	}
	internet := func(name, body string) string {
		return `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: ` + name + `}, spec: {workload: {name: ` + name + `}, targets: [{internet: ` + body + `}]}}`
	}
	long := strings.Repeat("n", 64)
	for _, tc := range []struct{ name, doc, msg string }{
		{"ip", internet("ip", `{ips: [not-an-ip]}`), `spec.targets[0].internet.ips[0]: Invalid value: "not-an-ip": not an IP address or CIDR block (like 192.0.2.1 or 192.0.2.0/24)`},
		{"cidr", internet("cidr", `{ips: [10.0.0.1, 1.2.3.4/40]}`), `spec.targets[0].internet.ips[1]: Invalid value: "1.2.3.4/40": not an IP address or CIDR block`},
		{"domain", internet("domain", `{domains: ["bad domain!"]}`), `spec.targets[0].internet.domains[0]: Invalid value: "bad domain!"`},
		{"wildcard in the middle", internet("mid", `{domains: ["api.*.example.com"]}`), `Invalid value: "api.*.example.com"`},
		{"port too high", internet("high", `{ips: [1.1.1.1], ports: [70000]}`), "spec.targets[0].internet.ports[0]: Invalid value: 70000: spec.targets[0].internet.ports[0] in body should be less than or equal to 65535"},
		{"port zero", internet("zero", `{ips: [1.1.1.1], ports: [0]}`), "should be greater than or equal to 1"},
		{"v1alpha3 internet too", `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: old-ip}, spec: {service: {name: old-ip}, calls: [{type: internet, internet: {ips: [300.1.1.1]}}]}}`, `spec.calls[0].internet.ips[0]: Invalid value: "300.1.1.1": not an IP address or CIDR block`},
		{"database call", `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: db}, spec: {service: {name: db}, calls: [{name: pg, type: database}]}}`, "calls of type database, aws, gcp and azure are not supported"},
		{"second intents for a workload", `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: second}, spec: {workload: {name: client}}}`,
			`spec.workload: Forbidden: ClientIntents "first" in namespace "invalid-files" already declares the calls of workload "client" (kind Deployment); add these targets there, or delete one of them`},
		{"second intents in an old version", `{apiVersion: k8s.otterize.com/v1alpha2, kind: ClientIntents, metadata: {name: second-old}, spec: {service: {name: client}}}`,
			`spec.service: Forbidden: ClientIntents "first" in namespace "invalid-files" already declares the calls of workload "client"`},
		{"duplicate ProtectedService", `{apiVersion: k8s.otterize.com/v1beta1, kind: ProtectedService, metadata: {name: again}, spec: {name: server, kind: Deployment}}`,
			`spec.name: Forbidden: ProtectedService "first" in namespace "invalid-files" already protects "server"`},
		{"target namespace too long", `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: longns}, spec: {workload: {name: longns}, targets: [{service: {name: web.` + long + `}}]}}`,
			`"` + long + `" is not a valid namespace name: must be no more than 63 characters`},
		{"http path Istio reads literally", `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: star}, spec: {workload: {name: star}, targets: [{service: {name: web, http: [{path: "/a*b", methods: [GET]}]}}]}}`,
			`spec.targets[0].service.http[0].path: Invalid value: "/a*b": "*" is allowed only as the last character`},
		{"http template in an old version", `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: tmpl}, spec: {service: {name: tmpl}, calls: [{name: web, type: http, HTTPResources: [{path: "/files/{**}/{*}", methods: [GET]}]}]}}`,
			`spec.calls[0].HTTPResources[0].path: Invalid value: "/files/{**}/{*}": {**} must be the last template`},
		{"target namespace with capitals", `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: caps}, spec: {service: {name: caps}, calls: [{name: web.Prod}]}}`,
			`spec.calls[0].name: Invalid value: "web.Prod"`},
	} {
		t.Run(tc.name, func(t *testing.T) { expectRefused(t, ns, tc.doc, tc.msg) })
	}

	// The duplicate check does not stop the first object's own edits.
	first := getAs(t, "ClientIntents", "v2beta1", ns, "first")
	if err := unstructured.SetNestedSlice(first.Object, []any{map[string]any{"service": map[string]any{"name": "web"}}}, "spec", "targets"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Update(context.Background(), first); err != nil {
		t.Errorf("editing the only ClientIntents of a workload: %v", err)
	}
}
