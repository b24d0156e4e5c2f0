package e2e

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// TestNamesFollowTheirSystemsGrammar applies files whose strings name something another
// system parses (HTTP paths and methods, Kafka topics, Kubernetes kinds and names,
// targets of kinds intentguard does not enforce) and checks the API server refuses each
// with a message naming the field as the file's version spells it, and accepts the edge
// cases that are valid.
func TestNamesFollowTheirSystemsGrammar(t *testing.T) {
	ns := env.Namespace(t, "grammar")
	v2 := func(name, target string) string {
		return `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: ` + name + `}, spec: {workload: {name: ` + name + `}, targets: [` + target + `]}}`
	}
	v1 := func(version, name, call string) string {
		return `{apiVersion: k8s.otterize.com/` + version + `, kind: ClientIntents, metadata: {name: ` + name + `}, spec: {service: {name: ` + name + `}, calls: [` + call + `]}}`
	}
	for _, tc := range []struct{ name, doc, msg string }{
		{"path without slash", v2("p1", `{service: {name: web, http: [{path: api}]}}`), `spec.targets[0].service.http[0].path: Invalid value: "api": spec.targets[0].service.http[0].path in body should match '^/[!-~]*$'`},
		{"path with a space, v1alpha3", v1("v1alpha3", "p2", `{name: web, type: http, HTTPResources: [{path: "/a b"}]}`), `spec.calls[0].HTTPResources[0].path: Invalid value: "/a b"`},
		{"path with a control character, v1alpha2", v1("v1alpha2", "p3", `{name: web, type: http, resources: [{path: "/a\tb"}]}`), `spec.calls[0].resources[0].path: Invalid value: "/a\tb"`},
		{"unknown method", v2("m1", `{kubernetes: {name: web, http: [{path: /, methods: [FETCH]}]}}`), `spec.targets[0].kubernetes.http[0].methods[0]: Unsupported value: "FETCH": supported values: "GET", "HEAD", "POST"`},
		{"topic with a space", v2("t1", `{kafka: {name: kafka.kafka, topics: [{name: "orders topic", operations: [consume]}]}}`), `spec.targets[0].kafka.topics[0].name: Invalid value: "orders topic"`},
		{"topic too long, v1beta1", v1("v1beta1", "t2", `{name: kafka.kafka, type: kafka, kafkaTopics: [{name: `+strings.Repeat("t", 251)+`, operations: [all]}]}`), `spec.calls[0].kafkaTopics[0].name: Too long`},
		{"topic ..", v2("t3", `{kafka: {name: kafka.kafka, topics: [{name: "..", operations: [consume]}]}}`), `spec.targets[0].kafka.topics[0].name: Invalid value: "..": "." and ".." are not Kafka topic names`},
		{"kind in lower case", v2("k1", `{kubernetes: {name: web, kind: deployment}}`), `spec.targets[0].kubernetes.kind: Invalid value: "deployment"`},
		{"workload kind, v1alpha3", `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: k2}, spec: {service: {name: k2, kind: "Deploy ment"}}}`, `spec.service.kind: Invalid value: "Deploy ment"`},
		{"ProtectedService name", `{apiVersion: k8s.otterize.com/v1beta1, kind: ProtectedService, metadata: {name: ps}, spec: {name: Web}}`, `spec.name: Invalid value: "Web"`},
		{"new sql target", v2("s1", `{sql: {name: pg}}`), `spec.targets[0]: Forbidden: sql targets are not supported`},
		{"unknown field in a target", v2("s2", `{service: {name: web}, timeout: 3}`), `spec.targets[0]: Forbidden: unknown fields timeout`},
		{"new database call", v1("v1alpha3", "s3", `{name: pg, type: database, databaseResources: [{table: t}]}`), `spec.calls[0]: Invalid value: calls of type database, aws, gcp and azure are not supported`},
		{"kind smuggled in a v1alpha2 file's saved spec", `{apiVersion: k8s.otterize.com/v1alpha2, kind: ClientIntents, metadata: {name: a2, annotations: {intentguard.dev/v2beta1-spec: '{"workload":{"name":"a2"},"targets":[{"kubernetes":{"name":"web","kind":"deployment"}}]}'}}, spec: {service: {name: a2}, calls: [{name: web}]}}`,
			`metadata.annotations[intentguard.dev/v2beta1-spec].targets[0].kubernetes.kind: Invalid value: "deployment"`},
		{"namespace of a kafka target", v1("v1alpha3", "n1", `{name: kafka.Kafka, type: kafka}`), `spec.calls[0].name: Invalid value: "kafka.Kafka"`},
	} {
		t.Run(tc.name, func(t *testing.T) { expectRefused(t, ns, tc.doc, tc.msg) })
	}
	for name, doc := range map[string]string{
		"ok-head":   v2("ok-head", `{service: {name: web, http: [{path: "/v1/*", methods: [HEAD, GET]}]}}`),
		"ok-topics": v2("ok-topics", `{kafka: {name: kafka.kafka, topics: [{name: "*", operations: [describe]}, {name: "orders.v1-*", operations: [consume]}, {name: `+strings.Repeat("t", 249)+`, operations: [produce]}]}}`),
		"ok-v1":     v1("v1alpha3", "ok-v1", `{name: svc:web.prod, type: http, HTTPResources: [{path: "/a%20b", methods: [DELETE]}]}`),
	} {
		if _, err := applyDoc(ns, doc); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// TestStoredObjectsKeepTheirStatusPath checks the decision on objects that an earlier CRD
// accepted and the grammar now refuses: the API server ratchets unchanged fields, so the
// operator can still write their status and users can still edit their other fields,
// while a new bad value is refused.
func TestStoredObjectsKeepTheirStatusPath(t *testing.T) {
	ns := env.Namespace(t, "grammar-stored")
	putStored(t, ns, `
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: old}
spec:
  workload: {name: old}
  targets:
  - service: {name: web, http: [{path: api, methods: [GET]}]}
  - kafka: {name: kafka.kafka, topics: [{name: "orders topic", operations: [consume]}]}
`)
	var ci v2beta1.ClientIntents
	key := client.ObjectKey{Namespace: ns, Name: "old"}
	if err := kube.Get(context.Background(), key, &ci); err != nil {
		t.Fatal(err)
	}
	ci.Status.TargetCount = 2
	ci.Status.Enforcement = "Partial"
	if err := kube.Status().Update(context.Background(), &ci); err != nil {
		t.Errorf("status update of a stored object: %v", err)
	}
	if err := kube.Get(context.Background(), key, &ci); err != nil {
		t.Fatal(err)
	}
	ci.Labels = map[string]string{"team": "a"}
	if err := kube.Update(context.Background(), &ci); err != nil {
		t.Errorf("label edit of a stored object: %v", err)
	}
	if err := kube.Get(context.Background(), key, &ci); err != nil {
		t.Fatal(err)
	}
	ci.Spec.Targets[0].Service.HTTP[0].Path = "other"
	if err := kube.Update(context.Background(), &ci); err == nil || !strings.Contains(err.Error(), `spec.targets[0].service.http[0].path: Invalid value: "other"`) {
		t.Errorf("a new bad path: %v", err)
	}
}
