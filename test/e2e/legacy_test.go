package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// putStored writes a ClientIntents into etcd as the API server stores it, in the version
// the YAML names, bypassing admission: the state of a cluster whose objects were written
// under upstream's CRD, before this project's was installed. The object is removed from
// etcd when the test ends.
func putStored(t *testing.T, ns, doc string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	meta := obj["metadata"].(map[string]any)
	name := meta["name"].(string)
	meta["namespace"] = ns
	meta["uid"] = fmt.Sprintf("00000000-0000-0000-0000-%012d", len(name)*7919+len(ns))
	meta["creationTimestamp"] = "2024-01-01T00:00:00Z"
	meta["generation"] = 1
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	key := "/registry/k8s.otterize.com/clientintents/" + ns + "/" + name
	if err := local.EtcdPut(key, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := local.EtcdDelete(key); err != nil {
			t.Errorf("removing %s/%s from etcd: %v", ns, name, err)
		}
	})
}

// legacyObjects are ClientIntents that upstream's CRD accepted and this project's has no
// equivalent for: calls of type database, aws, gcp and azure with their resources, and
// the sql target of the v2 versions.
var legacyObjects = []struct{ name, version, doc, target, says string }{
	{"legacy-db", "v1alpha3", `
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: legacy-db}
spec:
  service: {name: reporting}
  calls:
  - {name: postgres, type: database, databaseResources: [{databaseName: shop, table: users, operations: [SELECT]}]}
  - {name: server.legacy-victim}
`, "database call postgres", "calls of type database are not enforced by intentguard"},
	{"legacy-aws", "v1beta1", `
apiVersion: k8s.otterize.com/v1beta1
kind: ClientIntents
metadata: {name: legacy-aws}
spec:
  service: {name: uploader}
  calls:
  - {name: "arn:aws:s3:::bucket", type: aws, awsActions: ["s3:PutObject"]}
`, "aws call arn:aws:s3:::bucket", "calls of type aws are not enforced by intentguard"},
	{"legacy-sql", "v2alpha1", `
apiVersion: k8s.otterize.com/v2alpha1
kind: ClientIntents
metadata: {name: legacy-sql}
spec:
  workload: {name: billing}
  targets:
  - sql: {name: pg, privileges: [{databaseName: shop, table: "*", operations: [ALL]}]}
  - service: {name: web}
`, "sql target pg", "sql targets are not enforced by intentguard"},
}

// TestLegacyObjectsDoNotStopTheOperator puts into etcd, in a tenant's namespace,
// ClientIntents written under upstream's CRD with calls this project cannot express.
// Reading them in v2beta1, as the operator's cache does, must not fail: the operator
// starts, enforces another namespace's intents, reports the calls it does not enforce in
// the legacy objects' status, and every object reads back in its own version as written.
func TestLegacyObjectsDoNotStopTheOperator(t *testing.T) {
	victim := env.Namespace(t, "legacy-victim")
	tenant := env.Namespace(t, "legacy-tenant")
	env.Deployment(t, victim, "server", 1, nil, nil)
	env.Deployment(t, victim, "client", 1, nil, nil)
	ci := env.ApplyIntents(t, victim, `{metadata: {name: client}, spec: {workload: {name: client}, targets: [{kubernetes: {name: server}}]}}`)
	for _, l := range legacyObjects {
		putStored(t, tenant, l.doc)
	}
	startOperator(t, enforcement.Options{})

	waitReady(t, ci)
	suite.WaitFor(t, "the victim's policy", 30*time.Second, func() (bool, error) { return len(managedPolicies(t, victim)) > 0, nil })
	for _, l := range legacyObjects {
		var got v2beta1.ClientIntents
		suite.WaitFor(t, l.name+" reporting "+l.target, 30*time.Second, func() (bool, error) {
			if err := kube.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: l.name}, &got); err != nil {
				return false, err
			}
			for _, st := range got.Status.Targets {
				if st.Target == l.target && st.State == "NotEnforced" && strings.Contains(st.Message, l.says) {
					return true, nil
				}
			}
			return false, fmt.Errorf("status %+v", got.Status.Targets)
		})
		var want map[string]any
		if err := yaml.Unmarshal([]byte(l.doc), &want); err != nil {
			t.Fatal(err)
		}
		wantSpec, _ := json.Marshal(want["spec"])
		own := getAs(t, "ClientIntents", l.version, tenant, l.name)
		if got := specJSON(t, own); got != string(wantSpec) {
			t.Errorf("%s read as %s:\n%s\nwas written\n%s", l.name, l.version, got, wantSpec)
		}
		// Its owners can still edit it in its own version, and the call stays as written.
		own.SetLabels(map[string]string{"edited": "yes"})
		if err := kube.Update(context.Background(), own); err != nil {
			t.Errorf("editing %s in %s: %v", l.name, l.version, err)
		}
		if got := specJSON(t, getAs(t, "ClientIntents", l.version, tenant, l.name)); got != string(wantSpec) {
			t.Errorf("%s after an edit in %s:\n%s\nwas written\n%s", l.name, l.version, got, wantSpec)
		}
	}
	// Adding another such call is refused, in the old version as in v2beta1.
	db := getAs(t, "ClientIntents", "v1alpha3", tenant, "legacy-db")
	calls, _, _ := unstructured.NestedSlice(db.Object, "spec", "calls")
	calls = append(calls, map[string]any{"name": "mysql", "type": "database"})
	if err := unstructured.SetNestedSlice(db.Object, calls, "spec", "calls"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Update(context.Background(), db); err == nil || !strings.Contains(err.Error(), "spec.calls[2]: Invalid value: calls of type database, aws, gcp and azure are not supported") {
		t.Errorf("adding a database call: %v", err)
	}
	sql := getAs(t, "ClientIntents", "v2beta1", tenant, "legacy-sql")
	targets, _, _ := unstructured.NestedSlice(sql.Object, "spec", "targets")
	targets = append(targets, map[string]any{"azure": map[string]any{"scope": "/subscriptions/s"}})
	if err := unstructured.SetNestedSlice(sql.Object, targets, "spec", "targets"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Update(context.Background(), sql); err == nil || !strings.Contains(err.Error(), "spec.targets[2]: Forbidden: azure targets are not supported") {
		t.Errorf("adding an azure target: %v", err)
	}
}
