package input_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
)

// write lays out files (path -> content) under a new directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// intents is the ClientIntents of checkout in version, in the shape of its version:
// v1 versions say calls (whose Kafka topics are in topicsField), v2 ones say targets.
func intents(version, topicsField string) string {
	head := "apiVersion: k8s.otterize.com/" + version + "\nkind: ClientIntents\nmetadata: {name: checkout, namespace: shop}\n"
	if strings.HasPrefix(version, "v2") {
		return head + `spec:
  workload: {name: checkout}
  targets:
  - kubernetes: {name: orders}
  - kafka: {name: kafka.kafka, topics: [{name: orders, operations: [produce]}]}
`
	}
	return head + `spec:
  service: {name: checkout}
  calls:
  - name: orders
  - name: kafka.kafka
    type: kafka
    ` + topicsField + `: [{name: orders, operations: [produce]}]
`
}

func TestEveryVersionReadsAsTheHub(t *testing.T) {
	want := v2beta1.ClientIntentsSpec{
		Workload: v2beta1.Workload{Name: "checkout"},
		Targets: []v2beta1.Target{
			{Kubernetes: &v2beta1.KubernetesTarget{Name: "orders"}},
			{Kafka: &v2beta1.KafkaTarget{Name: "kafka.kafka", Topics: []v2beta1.KafkaTopic{{Name: "orders", Operations: []v2beta1.KafkaOperation{"produce"}}}}},
		},
	}
	for _, tc := range []struct{ version, doc string }{
		{"v1alpha2", intents("v1alpha2", "topics")},
		{"v1alpha3", intents("v1alpha3", "kafkaTopics")},
		{"v1beta1", intents("v1beta1", "kafkaTopics")},
		{"v2alpha1", intents("v2alpha1", "")},
		{"v2beta1", intents("v2beta1", "")},
	} {
		t.Run(tc.version, func(t *testing.T) {
			dir := write(t, map[string]string{"intents.yaml": tc.doc + "---\napiVersion: k8s.otterize.com/" + tc.version +
				"\nkind: ProtectedService\nmetadata: {name: orders, namespace: shop}\nspec: {name: orders}\n"})
			set, err := input.Load(context.Background(), input.Options{Paths: []string{dir}})
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Objects) != 2 {
				t.Fatalf("got %d objects, want 2", len(set.Objects))
			}
			ci, ok := set.Objects[0].(*v2beta1.ClientIntents)
			if !ok {
				t.Fatalf("got %T, want the hub ClientIntents", set.Objects[0])
			}
			if got := ci.GroupVersionKind(); got != v2beta1.GroupVersion.WithKind("ClientIntents") {
				t.Errorf("apiVersion/kind %s", got)
			}
			if got, want := yamlOf(t, ci.Spec), yamlOf(t, want); got != want {
				t.Errorf("spec\n got %s\nwant %s", got, want)
			}
			ps, ok := set.Objects[1].(*v2beta1.ProtectedService)
			if !ok || ps.Spec.Name != "orders" {
				t.Fatalf("got %#v, want the hub ProtectedService for orders", set.Objects[1])
			}
			src := set.Source(ps)
			if line := strings.Count(tc.doc, "\n") + 2; src.Line != line || src.Document != 2 || !strings.HasSuffix(src.File, "intents.yaml") {
				t.Errorf("ProtectedService source %+v, want intents.yaml line %d, document 2", src, line)
			}
		})
	}
}

func TestKafkaServerConfigGetsItsDefaults(t *testing.T) {
	dir := write(t, map[string]string{"kafka.yaml": `
apiVersion: k8s.otterize.com/v2beta1
kind: KafkaServerConfig
metadata: {name: kafka, namespace: kafka}
spec:
  workload: {name: kafka, kind: StatefulSet}
  addr: kafka.kafka:9092
  topics:
  - {topic: orders}
`})
	set, err := input.Load(context.Background(), input.Options{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	ksc := set.Objects[0].(*v2beta1.KafkaServerConfig)
	if got := ksc.Spec.Topics[0].Pattern; got != "literal" {
		t.Errorf("pattern %q, want the CRD's default literal", got)
	}
}

func TestFilesAndDirectories(t *testing.T) {
	dir := write(t, map[string]string{
		"a/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n",
		"a/b/list.yml": `
# a comment-only document first
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: checkout}
  spec:
    selector: {matchLabels: {app: checkout}}
    template: {metadata: {labels: {app: checkout}}, spec: {containers: [{name: c, image: x}]}}
- apiVersion: v1
  kind: Service
  metadata: {name: orders, namespace: shop}
  spec: {selector: {app: orders}, ports: [{port: 80}]}
`,
		"a/c.json":     `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}`,
		"a/ignored.md": "not a manifest",
	})
	set, err := input.Load(context.Background(), input.Options{Paths: []string{filepath.Join(dir, "a")}, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range set.Objects {
		kinds = append(kinds, input.KeyOf(o).String())
	}
	want := []string{"Deployment.apps shop/checkout", "Service shop/orders", "Widget.example.com w", "Namespace shop"}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("objects %q, want %q", kinds, want)
	}
	if _, ok := set.Objects[0].(*appsv1.Deployment); !ok {
		t.Errorf("Deployment is %T, want typed", set.Objects[0])
	}
	if _, ok := set.Objects[2].(*unstructured.Unstructured); !ok {
		t.Errorf("an unknown kind is %T, want unstructured", set.Objects[2])
	}
	if src := set.Source(set.Objects[1]); src.Document != 1 || src.Item != 2 || src.Line != 4 {
		t.Errorf("the Service's source is %+v, want document 1 (after the blank one), item 2, line 4", src)
	}
	if got := set.Source(set.Objects[1]).String(); !strings.HasSuffix(got, "list.yml:4 (document 1, item 2)") {
		t.Errorf("source printed as %q", got)
	}
}

func TestErrorsNameTheFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"bad YAML", map[string]string{"bad.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n"},
			[]string{"bad.yaml:5 (document 2)", "not YAML"}},
		{"no kind", map[string]string{"nokind.yaml": "apiVersion: v1\nmetadata: {name: a}\n"},
			[]string{"nokind.yaml:1 (document 1)", "kind"}},
		{"unserved version", map[string]string{"old.yaml": "apiVersion: k8s.otterize.com/v1alpha1\nkind: ClientIntents\nmetadata: {name: a}\n"},
			[]string{"old.yaml:1 (document 1)", "ClientIntents \"a\"", "v1alpha1 is not served", "v2beta1"}},
		{"twice", map[string]string{"one.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "two.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"},
			[]string{"two.yaml:1 (document 1): Namespace a is also defined at ", "one.yaml:1"}},
		{"wrong type", map[string]string{"dep.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: many}\n"},
			[]string{"dep.yaml:1 (document 1): Deployment \"a\": decoding"}},
		{"missing file", nil, []string{"reading ", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, tc.files)
			path := dir
			if tc.files == nil {
				path = filepath.Join(dir, "absent.yaml")
			}
			_, err := input.Load(context.Background(), input.Options{Paths: []string{path}})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestStdin(t *testing.T) {
	set, err := input.Load(context.Background(), input.Options{Paths: []string{"-"}, Stdin: strings.NewReader(intents("v2beta1", ""))})
	if err != nil {
		t.Fatal(err)
	}
	if src := set.Source(set.Objects[0]); src.File != "-" || src.Line != 1 {
		t.Errorf("source %+v", src)
	}
}

func TestKeyIgnoresVersion(t *testing.T) {
	a := &corev1.Namespace{}
	a.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	a.Name = "x"
	var o client.Object = a
	if got := input.KeyOf(o).String(); got != "Namespace x" {
		t.Errorf("key %q", got)
	}
}

func TestLayersOverlay(t *testing.T) {
	dir := write(t, map[string]string{
		"snapshot.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n---\n" +
			intents("v1alpha3", "kafkaTopics") +
			"---\napiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: orders, namespace: shop}\nspec: {name: orders}\n",
		"change/intents.yaml": `apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: checkout, namespace: shop}
spec:
  workload: {name: checkout}
  targets: [{service: {name: orders}}]
`,
	})
	set, err := input.Load(context.Background(), input.Options{
		Snapshots: []string{filepath.Join(dir, "snapshot.yaml")},
		Paths:     []string{filepath.Join(dir, "change")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Objects) != 3 {
		t.Fatalf("%d objects, want 3 (the change replaces the snapshot's ClientIntents)", len(set.Objects))
	}
	if all := input.All[*v2beta1.ClientIntents](set); len(all) != 1 || all[0] != set.Objects[1] {
		t.Errorf("All ClientIntents: %v", all)
	}
	ci := set.Objects[1].(*v2beta1.ClientIntents)
	if len(ci.Spec.Targets) != 1 || ci.Spec.Targets[0].Service == nil {
		t.Errorf("ClientIntents %s: want the changed one, in the place of the snapshot's", yamlOf(t, ci.Spec))
	}
	if src := set.Source(ci); !strings.HasSuffix(src.File, filepath.Join("change", "intents.yaml")) {
		t.Errorf("source %v, want the change", src)
	}
	if src := set.Source(set.Objects[2]); !strings.HasSuffix(src.File, "snapshot.yaml") || src.Document != 3 {
		t.Errorf("ProtectedService source %v, want the snapshot's third document", src)
	}
}

func yamlOf(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		live     bool
		snapshot []string
		ns       string
	}{
		{nil, false, nil, "default"},
		{[]string{"--live"}, true, nil, "default"},
		{[]string{"--context", "prod"}, true, nil, "default"},
		{[]string{"--kubeconfig", "k"}, true, nil, "default"},
		{[]string{"--snapshot", "a.yaml", "--snapshot", "b", "--default-namespace", "shop"}, false, []string{"a.yaml", "b"}, "shop"},
	} {
		var f input.Flags
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		f.AddTo(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		opts := f.Options([]string{"dir"}, nil)
		if (opts.Live != nil) != tc.live || strings.Join(opts.Snapshots, ",") != strings.Join(tc.snapshot, ",") || opts.Namespace != tc.ns || opts.Paths[0] != "dir" {
			t.Errorf("%v: options %+v", tc.args, opts)
		}
		if opts.Live != nil && (opts.Live.Context != f.Context || opts.Live.Kubeconfig != f.Kubeconfig) {
			t.Errorf("%v: live %+v", tc.args, opts.Live)
		}
	}
}

// TestPrune checks that --prune deletes, in the namespaces the files hold intentguard
// objects in (and those named), the intentguard objects of the lower layers the files
// do not hold, and nothing else.
func TestPrune(t *testing.T) {
	obj := func(kind, ns, name, spec string) string {
		return "apiVersion: k8s.otterize.com/v2beta1\nkind: " + kind + "\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: " + spec + "\n---\n"
	}
	ci := func(ns, name string) string {
		return obj("ClientIntents", ns, name, "{workload: {name: "+name+"}, targets: [{service: {name: orders}}]}")
	}
	dir := write(t, map[string]string{
		"snapshot.yaml": ci("shop", "checkout") + ci("shop", "cart") +
			obj("ProtectedService", "shop", "orders", "{name: orders}") +
			obj("KafkaServerConfig", "kafka", "kafka", "{workload: {name: kafka}, addr: kafka:9092}") +
			ci("billing", "invoices") +
			"apiVersion: v1\nkind: Service\nmetadata: {name: orders, namespace: shop}\nspec: {selector: {app: orders}}\n",
		"change/shop.yaml":    ci("shop", "checkout"),
		"change/default.yaml": "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: local}\nspec: {workload: {name: local}, targets: [{service: {name: x}}]}\n",
		"other/service.yaml":  "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: billing}\nspec: {selector: {app: web}}\n",
	})
	snapshot := []string{filepath.Join(dir, "snapshot.yaml")}
	for _, tc := range []struct {
		name       string
		paths      []string
		prune      bool
		namespaces []string
		wantPruned []string
		// wantObjects counts the objects left: the snapshot holds 6.
		wantObjects int
	}{
		{"no prune", []string{filepath.Join(dir, "change")}, false, nil, nil, 7},
		{"the namespaces of the files", []string{filepath.Join(dir, "change")}, true, nil,
			[]string{"ClientIntents shop/cart", "ProtectedService shop/orders"}, 5},
		{"a named namespace too", []string{filepath.Join(dir, "change")}, true, []string{"kafka"},
			[]string{"ClientIntents shop/cart", "KafkaServerConfig kafka/kafka", "ProtectedService shop/orders"}, 4},
		{"a named namespace implies prune", []string{filepath.Join(dir, "change", "default.yaml")}, false, []string{"billing"},
			[]string{"ClientIntents billing/invoices"}, 6},
		{"other kinds do not make a namespace pruned", []string{filepath.Join(dir, "other")}, true, nil, nil, 7},
		{"without files nothing is pruned", nil, true, []string{"shop"}, nil, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := input.Load(context.Background(), input.Options{Snapshots: snapshot, Paths: tc.paths, Prune: tc.prune, PruneNamespaces: tc.namespaces})
			if err != nil {
				t.Fatal(err)
			}
			var pruned []string
			for _, p := range set.Pruned {
				pruned = append(pruned, p.String())
				if !strings.HasSuffix(p.Source.File, "snapshot.yaml") {
					t.Errorf("%s: source %v, want the snapshot", p, p.Source)
				}
			}
			if strings.Join(pruned, ",") != strings.Join(tc.wantPruned, ",") {
				t.Errorf("pruned %v, want %v", pruned, tc.wantPruned)
			}
			for _, o := range set.Objects {
				k := input.KeyOf(o)
				for _, p := range pruned {
					if p == k.Kind+" "+k.Namespace+"/"+k.Name {
						t.Errorf("%s is pruned but still in the set", k)
					}
				}
				if _, ok := set.Sources[k]; !ok {
					t.Errorf("%s has no source", k)
				}
			}
			if len(set.Objects) != tc.wantObjects || len(set.Sources) != tc.wantObjects {
				t.Errorf("%d objects and %d sources, want %d", len(set.Objects), len(set.Sources), tc.wantObjects)
			}
		})
	}
}

func TestPruneFlags(t *testing.T) {
	var f input.Flags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.AddTo(fs)
	if err := fs.Parse([]string{"--prune", "--prune-namespace", "shop", "--prune-namespace", "kafka"}); err != nil {
		t.Fatal(err)
	}
	if opts := f.Options([]string{"dir"}, nil); !opts.Prune || strings.Join(opts.PruneNamespaces, ",") != "shop,kafka" {
		t.Errorf("options %+v", opts)
	}
}

func TestNetworkPolicyGetsTheAPIServersDefaults(t *testing.T) {
	dir := write(t, map[string]string{"np.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80}]}]
  egress: [{ports: [{port: 53, protocol: UDP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-only}
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only}
spec:
  podSelector: {}
  policyTypes: [Egress]
`})
	docs, err := input.ReadFiles([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"both": "[Ingress Egress] TCP UDP", "ingress-only": "[Ingress]", "egress-only": "[Egress]"}
	for _, d := range docs {
		o, err := input.Decode(d, "")
		if err != nil {
			t.Fatal(err)
		}
		np := o.(*networkingv1.NetworkPolicy)
		got := fmt.Sprint(np.Spec.PolicyTypes)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				got += " " + string(*p.Protocol)
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				got += " " + string(*p.Protocol)
			}
		}
		if got != want[np.Name] {
			t.Errorf("%s: %q, want %q", np.Name, got, want[np.Name])
		}
	}
}
