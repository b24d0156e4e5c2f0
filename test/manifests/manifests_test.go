// Package manifests checks the deployment manifests and the Helm chart without a cluster:
// every object decodes strictly into its Kubernetes type, generated copies match their
// source, and the operator is only given flags it defines.
package manifests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// root is the repository root, relative to this package.
const root = "../.."

const (
	chartDir  = root + "/deploy/helm/intentguard"
	configDir = root + "/config"
	crdDir    = configDir + "/crd"
	namespace = "intentguard-system"
)

// object is a decoded manifest with where it came from.
type object struct {
	file string
	obj  metav1.Object
	kind string
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.kind, o.obj.GetNamespace(), o.obj.GetName(), o.file)
}

// newTyped returns an empty object of the Kubernetes type for apiVersion and kind.
func newTyped(apiVersion, kind string) (metav1.Object, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration":
		return &admissionv1.ValidatingWebhookConfiguration{}, true
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "apiextensions.k8s.io/v1/CustomResourceDefinition":
		return &apiextensionsv1.CustomResourceDefinition{}, true
	}
	return nil, false
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll strictly decodes every YAML document of data: unknown or duplicate fields,
// unknown kinds and nameless objects are errors.
func decodeAll(file string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		obj, ok := newTyped(head.APIVersion, head.Kind)
		if !ok {
			return nil, fmt.Errorf("%s: document %d: unexpected apiVersion %q kind %q", file, i, head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %w", file, i, head.Kind, err)
		}
		if obj.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d (%s) has no name", file, i, head.Kind)
		}
		out = append(out, object{file: file, obj: obj, kind: head.Kind})
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// manifestFiles lists the YAML manifests under config/ and the chart's plain YAML files.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(configDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch {
		case d.Name() == "kustomization.yaml":
		case strings.HasSuffix(path, ".yaml"):
			files = append(files, path)
		case strings.HasSuffix(path, ".go"):
		default:
			return fmt.Errorf("unexpected file %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	chartCRDs, err := filepath.Glob(chartDir + "/files/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, chartCRDs...)
	files = append(files, chartDir+"/files/role.yaml", chartDir+"/files/webhook.yaml")
	return files
}

func loadAll(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Fatalf("%s holds no object", f)
		}
		all = append(all, objs...)
	}
	return all
}

func find[T metav1.Object](t *testing.T, objs []object, file, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && strings.HasSuffix(o.file, file) && o.obj.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %s", zero, name, file)
	return zero
}

// TestManifestsDecodeStrictly parses every manifest into its typed object.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadAll(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
	}
	for _, k := range []string{"Namespace", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "CustomResourceDefinition"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
}

// TestDecodeRejectsUnknownFields keeps the strictness of the decoding honest.
func TestDecodeRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountToken: false\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
	} {
		if _, err := decodeAll("inline", []byte(doc)); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
}

// TestGeneratedCopiesAreIdentical checks the copies make generate writes: the CRDs in the
// Helm chart and in config/default, and the ClusterRole rules the chart reads.
func TestGeneratedCopiesAreIdentical(t *testing.T) {
	crds, err := filepath.Glob(crdDir + "/*.yaml")
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in %s: %v", crdDir, err)
	}
	for _, copyDir := range []string{chartDir + "/files/crds", configDir + "/default/crds"} {
		copies, err := filepath.Glob(copyDir + "/*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) != len(crds) {
			t.Errorf("%s holds %d CRDs, %s holds %d: run make generate", copyDir, len(copies), crdDir, len(crds))
		}
		for _, src := range crds {
			sameBytes(t, src, filepath.Join(copyDir, filepath.Base(src)))
		}
	}
	sameBytes(t, configDir+"/rbac/role.yaml", chartDir+"/files/role.yaml")
	sameBytes(t, configDir+"/webhook/manifests.yaml", chartDir+"/files/webhook.yaml")
}

func sameBytes(t *testing.T, src, dst string) {
	t.Helper()
	a, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Errorf("%s: %v (run make generate)", dst, err)
		return
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s: run make generate", dst, src)
	}
}

// operatorFlags returns the flags cmd/intents-operator defines, with whether each is boolean.
func operatorFlags(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`(?:flag|fs)\.(String|Bool|Int|Int64|Uint|Uint64|Float64|Duration)Var\(&[^,]+, "([^"]+)"`)
	flags := map[string]bool{}
	// main.go defines its flags, and binds the client limit's from its package.
	for _, file := range []string{"/cmd/intents-operator/main.go", "/internal/clientlimit/clientlimit.go"} {
		src, err := os.ReadFile(root + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			flags[m[2]] = m[1] == "Bool"
		}
	}
	// zap.Options.BindFlags defines the logging flags.
	for _, z := range []string{"zap-log-level", "zap-encoder", "zap-stacktrace-level", "zap-time-encoding"} {
		flags[z] = false
	}
	flags["zap-devel"] = true
	for _, must := range []string{"leader-elect", "shadow-mode", "enforced-namespaces", "metrics-bind-address", "health-probe-bind-address"} {
		if _, ok := flags[must]; !ok {
			t.Fatalf("flag %q not found in main.go (found %v): has the flag parsing changed?", must, flags)
		}
	}
	return flags
}

// checkArgs fails for every argument that is not a flag main.go defines, or that gives a
// non-boolean flag no value.
func checkArgs(t *testing.T, where string, args []string, flags map[string]bool) {
	t.Helper()
	for _, arg := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		isBool, ok := flags[name]
		switch {
		case !strings.HasPrefix(arg, "-"):
			t.Errorf("%s: argument %q is not a flag", where, arg)
		case !ok:
			t.Errorf("%s: flag %q is not defined by cmd/intents-operator", where, name)
		case !isBool && !hasValue:
			t.Errorf("%s: flag %q needs a value (--%s=...)", where, name, name)
		case isBool && hasValue && value != "true" && value != "false":
			t.Errorf("%s: boolean flag %q given %q", where, name, value)
		}
	}
}

// TestDeploymentAndRBAC checks that the Deployment runs with flags the binary has, probes
// and ports that match them, and a ServiceAccount bound to the generated ClusterRole and
// to the leader-election Role.
func TestDeploymentAndRBAC(t *testing.T) {
	objs := loadAll(t)
	flags := operatorFlags(t)
	d := find[*appsv1.Deployment](t, objs, "config/manager/manager.yaml", "intents-operator")
	if d.Namespace != namespace {
		t.Errorf("Deployment in namespace %q", d.Namespace)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	checkArgs(t, "config/manager/manager.yaml", c.Args, flags)
	for _, want := range []string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("Deployment args %v lack %s", c.Args, want)
		}
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.IntValue() != 8081 {
		t.Errorf("liveness probe %+v, want GET /healthz on 8081", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.IntValue() != 8081 {
		t.Errorf("readiness probe %+v, want GET /readyz on 8081", c.ReadinessProbe)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" && p.ContainerPort == 8080 }) {
		t.Errorf("no port metrics=8080 in %+v", c.Ports)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext is not restricted: %+v", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources not set: %+v", c.Resources)
	}
	find[*corev1.Namespace](t, objs, "config/manager/manager.yaml", namespace)

	saName := d.Spec.Template.Spec.ServiceAccountName
	sa := find[*corev1.ServiceAccount](t, objs, "config/rbac/service_account.yaml", saName)
	if sa.Namespace != namespace {
		t.Errorf("ServiceAccount in namespace %q", sa.Namespace)
	}
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: saName, Namespace: namespace}

	role := find[*rbacv1.ClusterRole](t, objs, "config/rbac/role.yaml", "intents-operator")
	if len(role.Rules) == 0 {
		t.Error("generated ClusterRole has no rules")
	}
	crb := find[*rbacv1.ClusterRoleBinding](t, objs, "config/rbac/role_binding.yaml", "intents-operator")
	if crb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name}) || !slices.Contains(crb.Subjects, subject) {
		t.Errorf("ClusterRoleBinding %+v does not bind %s to ClusterRole %s", crb, saName, role.Name)
	}

	le := find[*rbacv1.Role](t, objs, "config/rbac/leader_election_role.yaml", "intents-operator-leader-election")
	if le.Namespace != namespace || !grants(le.Rules, "coordination.k8s.io", "leases", "create", "get", "update") || !grants(le.Rules, "", "events", "create") {
		t.Errorf("leader-election Role %+v lacks leases or events", le)
	}
	rb := find[*rbacv1.RoleBinding](t, objs, "config/rbac/leader_election_role_binding.yaml", "intents-operator-leader-election")
	if rb.Namespace != namespace || rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: le.Name}) || !slices.Contains(rb.Subjects, subject) {
		t.Errorf("leader-election RoleBinding %+v does not bind %s to Role %s", rb, saName, le.Name)
	}
}

func grants(rules []rbacv1.PolicyRule, group, resource string, verbs ...string) bool {
	for _, verb := range verbs {
		if !slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb)
		}) {
			return false
		}
	}
	return true
}

// kustomization is the part of a kustomization.yaml these tests read.
type kustomization struct {
	Resources []string `json:"resources"`
	Patches   []struct {
		Target map[string]string `json:"target"`
		Patch  string            `json:"patch"`
	} `json:"patches,omitempty"`
}

// TestKustomizationsListEveryManifest checks that config/default installs every CRD and
// every manifest of config/rbac and config/manager, and that each listed path exists.
func TestKustomizationsListEveryManifest(t *testing.T) {
	listed := map[string]bool{}
	var walk func(dir string)
	walk = func(dir string) {
		data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		var k kustomization
		if err := yaml.UnmarshalStrict(data, &k); err != nil {
			t.Fatalf("%s/kustomization.yaml: %v", dir, err)
		}
		for _, r := range k.Resources {
			p := filepath.Clean(filepath.Join(dir, r))
			st, err := os.Stat(p)
			switch {
			case err != nil:
				t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
			case st.IsDir():
				walk(p)
			default:
				listed[p] = true
			}
		}
	}
	walk(configDir + "/default")
	for _, pattern := range []string{"/default/crds/*.yaml", "/rbac/*.yaml", "/manager/*.yaml"} {
		files, err := filepath.Glob(configDir + pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if filepath.Base(f) != "kustomization.yaml" && !listed[filepath.Clean(f)] {
				t.Errorf("%s is not installed by config/default", f)
			}
		}
	}
	crds, _ := filepath.Glob(crdDir + "/*.yaml")
	for _, f := range crds {
		if !listed[filepath.Clean(configDir+"/default/crds/"+filepath.Base(f))] {
			t.Errorf("CRD %s is not installed by config/default", filepath.Base(f))
		}
	}
}

// TestKustomizeBuild renders config/default with kubectl's kustomize ($KUBECTL, which
// make test sets to the kubectl hack/k8s-binaries.sh builds, else kubectl on PATH) and
// decodes the result strictly.
func TestKustomizeBuild(t *testing.T) {
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		var err error
		if kubectl, err = exec.LookPath("kubectl"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no kubectl: set KUBECTL (make test does) or put kubectl on PATH; CI must render config/default")
			}
			t.Skip("kubectl not installed; make test builds one")
		}
	}
	out, err := exec.Command(kubectl, "kustomize", configDir+"/default").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", stderrOf(err))
	}
	objs, err := decodeAll("kustomize output", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(loadAllConfig(t)) {
		t.Errorf("kustomize rendered %d objects, config/ holds %d", len(objs), len(loadAllConfig(t)))
	}
}

func loadAllConfig(t *testing.T) []object {
	var out []object
	for _, o := range loadAll(t) {
		if strings.HasPrefix(o.file, configDir+"/") && !strings.HasPrefix(o.file, crdDir+"/") && !strings.HasPrefix(o.file, configDir+"/webhook/") {
			out = append(out, o)
		}
	}
	return out
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

// TestChartTemplates checks the chart without rendering it: Chart.yaml, that every
// .Values path the templates use exists in values.yaml, and that the flags the deployment
// template passes are defined by the binary.
func TestChartTemplates(t *testing.T) {
	var chart struct {
		APIVersion  string `json:"apiVersion"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Type        string `json:"type"`
		Version     string `json:"version"`
		AppVersion  string `json:"appVersion"`
	}
	data, err := os.ReadFile(chartDir + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if chart.APIVersion != "v2" || chart.Name != "intentguard" || chart.AppVersion != "0.1.0" || chart.Version == "" {
		t.Errorf("Chart.yaml: %+v", chart)
	}

	var values map[string]any
	if data, err = os.ReadFile(chartDir + "/values.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	templates, err := filepath.Glob(chartDir + "/templates/*")
	if err != nil || len(templates) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	valueRef := regexp.MustCompile(`\.Values\.([A-Za-z0-9_.]+)`)
	for _, f := range templates {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range valueRef.FindAllStringSubmatch(string(src), -1) {
			if !hasPath(values, strings.Split(m[1], ".")) {
				t.Errorf("%s uses .Values.%s, which values.yaml does not define", filepath.Base(f), m[1])
			}
		}
	}

	src, err := os.ReadFile(chartDir + "/templates/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	flagRef := regexp.MustCompile(`(?m)^\s*- --([a-z0-9-]+)`)
	flags := operatorFlags(t)
	found := flagRef.FindAllStringSubmatch(string(src), -1)
	if len(found) < 4 {
		t.Fatalf("found only %v in the deployment template", found)
	}
	passed := map[string]bool{}
	for _, m := range found {
		passed[m[1]] = true
		if _, ok := flags[m[1]]; !ok {
			t.Errorf("templates/deployment.yaml: flag %q is not defined by cmd/intents-operator", m[1])
		}
	}
	// Every flag of the binary is a value of the chart, except these.
	notValues := map[string]string{
		"kubeconfig":               "the pod uses its ServiceAccount",
		"webhook-cert-namespace":   "the pod's namespace, from POD_NAMESPACE",
		"kafka-record-namespace":   "the pod's namespace, from POD_NAMESPACE",
		"kafka-tls-dirs":           "extraArgs: the chart mounts no broker TLS files; KafkaServerConfigs name Secrets",
		"release-kafka-finalizers": "the pre-delete hook's Job passes it",
		"zap-devel":                "extraArgs", "zap-encoder": "extraArgs", "zap-stacktrace-level": "extraArgs", "zap-time-encoding": "extraArgs",
	}
	for flag := range flags {
		if !passed[flag] && notValues[flag] == "" {
			t.Errorf("flag --%s is not passed by templates/deployment.yaml: add a value for it", flag)
		}
	}
}

func hasPath(m map[string]any, path []string) bool {
	v, ok := m[path[0]]
	if !ok {
		return false
	}
	if len(path) == 1 {
		return true
	}
	sub, ok := v.(map[string]any)
	return ok && hasPath(sub, path[1:])
}

// helmBinary returns $HELM (make test sets it to the binary hack/helm.sh builds), else the
// helm on PATH; in CI a missing helm is a failure, not a skip.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := exec.LookPath("helm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("helm not found: set HELM=$(bash hack/helm.sh)")
		}
		t.Skip("helm not installed: HELM=$(bash hack/helm.sh) go test ./test/manifests")
	}
	return h
}

// TestHelmRender renders the chart with helm, with the default
// values and with shadow mode, two replicas and metrics off, and decodes the output
// strictly.
func TestHelmRender(t *testing.T) {
	helm := helmBinary(t)
	if out, err := exec.Command(helm, "lint", "--strict", chartDir).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	flags := operatorFlags(t)
	baseArgs := []string{"--webhook-port=9443", "--webhook-cert-dir=/etc/intentguard/webhook",
		"--webhook-cert-secret=ig-intentguard-webhook", "--webhook-service=ig-intentguard-webhook", "--webhook-configurations=ig-intentguard-webhook", "--conversion-crds=clientintents.k8s.otterize.com,kafkaserverconfigs.k8s.otterize.com,protectedservices.k8s.otterize.com", "--webhook-cert-validity=8760h", "--webhook-cert-check-interval=1h", "--kube-api-qps=0", "--kube-api-burst=100", "--max-concurrent-reconciles=4", "--zap-log-level=info"}
	for _, tc := range []struct {
		name     string
		set      []string
		wantArgs []string
		wantKind map[string]int
	}{
		{"defaults", nil,
			append(slices.Clone(baseArgs), "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080", "--leader-elect", "--leader-election-id=ig-intentguard-intents-operator"),
			map[string]int{"Service": 2, "Role": 3, "RoleBinding": 3, "ClusterRole": 2, "PodDisruptionBudget": 1, "NetworkPolicy": 1, "ValidatingWebhookConfiguration": 1}},
		{"shadow", []string{"shadowMode=true", "enforcedNamespaces={a,b}", "replicas=2", "leaderElection.enabled=false", "metrics.enabled=false", "networkPolicy.enabled=false"},
			append(slices.Clone(baseArgs), "--health-probe-bind-address=:8081", "--metrics-bind-address=0", "--leader-elect", "--leader-election-id=ig-intentguard-intents-operator", "--shadow-mode", "--enforced-namespaces=a,b"),
			map[string]int{"Service": 1, "Role": 3, "RoleBinding": 3, "NetworkPolicy": 0}},
		{"single replica without leader election", []string{"leaderElection.enabled=false", "replicas=1"},
			append(slices.Clone(baseArgs), "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"),
			map[string]int{"Service": 2, "Role": 2, "RoleBinding": 2, "PodDisruptionBudget": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "ig", chartDir, "--namespace", "ops"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := exec.Command(helm, args...).Output()
			if err != nil {
				t.Fatalf("helm %v: %v", args, stderrOf(err))
			}
			objs, err := decodeAll("helm template", out)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			var deploy *appsv1.Deployment
			var role *rbacv1.ClusterRole
			for _, o := range objs {
				kinds[o.kind]++
				switch v := o.obj.(type) {
				case *appsv1.Deployment:
					deploy = v
				case *rbacv1.ClusterRole:
					if v.Name == "ig-intentguard" {
						role = v
					}
				}
			}
			for k, n := range tc.wantKind {
				if kinds[k] != n {
					t.Errorf("%d %s, want %d", kinds[k], k, n)
				}
			}
			if kinds["CustomResourceDefinition"] != 3 || deploy == nil || role == nil {
				t.Fatalf("rendered kinds %v", kinds)
			}
			got := deploy.Spec.Template.Spec.Containers[0].Args
			checkArgs(t, "rendered Deployment", got, flags)
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.wantArgs))) {
				t.Errorf("args %v, want %v", got, tc.wantArgs)
			}
			var generated rbacv1.ClusterRole
			data, err := os.ReadFile(configDir + "/rbac/role.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(data, &generated); err != nil {
				t.Fatal(err)
			}
			a, _ := yaml.Marshal(role.Rules)
			b, _ := yaml.Marshal(generated.Rules)
			if !bytes.Equal(a, b) {
				t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml:\n%s\nwant:\n%s", a, b)
			}
		})
	}
}
