package manifests

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// credentialsFlags returns the flags cmd/credentials-operator defines (and the logging
// flags zap adds), with whether each is boolean.
func credentialsFlags(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(root + "/cmd/credentials-operator/main.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`flag\.(String|Bool|Int|Int64|Uint|Uint64|Float64|Duration)Var\(&[^,]+, "([^"]+)"`)
	flags := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		flags[m[2]] = m[1] == "Bool"
	}
	for _, must := range []string{"backend", "leader-elect", "metrics-bind-address", "health-probe-bind-address", "ca-secret", "spire-socket"} {
		if _, ok := flags[must]; !ok {
			t.Fatalf("flag %q not found in cmd/credentials-operator/main.go (found %v)", must, flags)
		}
	}
	return flags
}

// TestCredentialsOperatorManifests checks the credentials operator's Deployment flags and
// that only its role reads, writes or lists Secrets cluster-wide.
func TestCredentialsOperatorManifests(t *testing.T) {
	objs := loadAll(t)
	flags := credentialsFlags(t)
	d := find[*appsv1.Deployment](t, objs, "config/credentials/manager.yaml", "credentials-operator")
	checkArgs(t, "config/credentials/manager.yaml", d.Spec.Template.Spec.Containers[0].Args, flags)
	if d.Spec.Template.Spec.ServiceAccountName != "credentials-operator" {
		t.Errorf("the credentials operator runs as %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	creds := find[*rbacv1.ClusterRole](t, objs, "config/rbac-credentials/role.yaml", "credentials-operator")
	if !grants(creds.Rules, "", "secrets", "get", "create", "update") || grants(creds.Rules, "", "secrets", "delete") {
		t.Errorf("credentials-operator role: Secrets rules %+v; want read, create and update, no delete", creds.Rules)
	}
	// The intents operator's cluster-wide role reaches no Secret (the credentials
	// operator's CA key included) and no ConfigMap: broker credentials are granted per
	// namespace by the chart, and its Kafka records live in its own namespace.
	intents := find[*rbacv1.ClusterRole](t, objs, "config/rbac/role.yaml", "intents-operator")
	for _, r := range intents.Rules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "configmaps") || slices.Contains(r.Resources, "*") {
			t.Errorf("the intents operator's ClusterRole grants %v on %v cluster-wide", r.Verbs, r.Resources)
		}
	}
	records := find[*rbacv1.Role](t, objs, "config/rbac/kafka_records_role.yaml", "intents-operator-kafka-records")
	if records.Namespace != namespace || !grants(records.Rules, "", "configmaps", "get", "create", "update", "delete") || grants(records.Rules, "", "secrets", "get") {
		t.Errorf("Kafka records Role: %s %+v; want ConfigMaps in %s only", records.Namespace, records.Rules, namespace)
	}
	sameBytes(t, configDir+"/rbac-credentials/role.yaml", chartDir+"/files/credentials-role.yaml")
}

// TestHelmRenderCredentialsOperator renders the chart with the credentials operator on,
// with each backend, with $HELM (make test builds it; in CI a missing helm fails).
func TestHelmRenderCredentialsOperator(t *testing.T) {
	helm := helmBinary(t)
	for _, backend := range []string{"ca", "spire"} {
		out, err := exec.Command(helm, "template", "ig", chartDir, "--namespace", "ops",
			"--set", "credentialsOperator.enabled=true", "--set", "credentialsOperator.backend="+backend,
			"--set", "credentialsOperator.clusterName=east", "--set-json", `credentialsOperator.allowedDNSNames=["a.example","{namespace}.b.example"]`).Output()
		if err != nil {
			t.Fatalf("helm template: %v", stderrOf(err))
		}
		objs, err := decodeAll("helm template", out)
		if err != nil {
			t.Fatal(err)
		}
		d := find[*appsv1.Deployment](t, objs, "helm template", "ig-intentguard-credentials")
		args := d.Spec.Template.Spec.Containers[0].Args
		checkArgs(t, "rendered credentials Deployment", args, credentialsFlags(t))
		for _, want := range []string{"--backend=" + backend, "--cluster-name=east", "--allowed-dns-names=a.example,{namespace}.b.example", "--max-cert-ttl=2160h", "--cluster-domain=cluster.local"} {
			if !slices.Contains(args, want) {
				t.Errorf("args %v lack %s", args, want)
			}
		}
		role := find[*rbacv1.ClusterRole](t, objs, "helm template", "ig-intentguard-credentials")
		var generated rbacv1.ClusterRole
		data, err := os.ReadFile(configDir + "/rbac-credentials/role.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, &generated); err != nil {
			t.Fatal(err)
		}
		a, _ := yaml.Marshal(role.Rules)
		b, _ := yaml.Marshal(generated.Rules)
		if string(a) != string(b) {
			t.Errorf("chart credentials ClusterRole rules differ from config/rbac-credentials/role.yaml:\n%s\nwant:\n%s", a, b)
		}
	}
}

// TestCredentialsOperatorLeavesOutThePolicyCompiler checks that the credentials binary
// resolves identities through internal/identity alone: it carries neither the intents
// operator's cluster reads nor the NetworkPolicy compiler.
func TestCredentialsOperatorLeavesOutThePolicyCompiler(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/credentials-operator")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/intentguard/intentguard/internal/identity") {
		t.Fatalf("the credentials operator does not use internal/identity: %v", deps)
	}
	for _, pkg := range []string{"internal/facts/informer", "internal/point/networkpolicy/compile", "internal/point/networkpolicy", "internal/status"} {
		if slices.Contains(deps, "github.com/intentguard/intentguard/"+pkg) {
			t.Errorf("the credentials operator imports %s", pkg)
		}
	}
}

// TestHelmKafkaRBAC renders the chart's Kafka RBAC: ConfigMaps (the ACL records) in the
// release namespace only, get on Secrets only in the namespaces kafkaCredentialNamespaces
// lists, nothing with the Kafka point off, and a refusal to list the release namespace,
// where the credentials operator keeps its CA key.
func TestHelmKafkaRBAC(t *testing.T) {
	helm := helmBinary(t)
	render := func(set ...string) ([]object, error) {
		args := []string{"template", "ig", chartDir, "--namespace", "ops", "--set", "credentialsOperator.enabled=true"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := exec.Command(helm, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("%s", stderrOf(err))
		}
		return decodeAll("helm template", out)
	}
	secretReaders := func(objs []object) map[string]bool {
		out := map[string]bool{}
		for _, o := range objs {
			switch v := o.obj.(type) {
			case *rbacv1.Role:
				if grants(v.Rules, "", "secrets", "get") &&
					!slices.ContainsFunc(v.Rules, func(r rbacv1.PolicyRule) bool { return len(r.ResourceNames) > 0 }) {
					out[v.Namespace] = true
				}
			case *rbacv1.ClusterRole:
				if v.Name != "ig-intentguard-credentials" && grants(v.Rules, "", "secrets", "get") {
					out["*"] = true
				}
			}
		}
		return out
	}
	objs, err := render("kafkaCredentialNamespaces={kafka,payments}")
	if err != nil {
		t.Fatal(err)
	}
	if got := secretReaders(objs); !maps.Equal(got, map[string]bool{"kafka": true, "payments": true}) {
		t.Errorf("the intents operator may get Secrets in %v, want kafka and payments only", got)
	}
	records := find[*rbacv1.Role](t, objs, "helm template", "ig-intentguard-kafka-records")
	if records.Namespace != "ops" || !grants(records.Rules, "", "configmaps", "get", "create", "update", "delete") || grants(records.Rules, "", "secrets", "get") {
		t.Errorf("records Role %s %+v", records.Namespace, records.Rules)
	}
	if objs, err = render(); err != nil {
		t.Fatal(err)
	} else if got := secretReaders(objs); len(got) != 0 {
		t.Errorf("by default the intents operator may get Secrets in %v, want none", got)
	}
	if objs, err = render("kafkaACLs=false", "kafkaCredentialNamespaces={kafka}"); err != nil {
		t.Fatal(err)
	} else if got := secretReaders(objs); len(got) != 0 {
		t.Errorf("with Kafka ACLs off the intents operator may get Secrets in %v", got)
	}
	if _, err := render("kafkaCredentialNamespaces={kafka,ops}"); err == nil || !strings.Contains(err.Error(), "CA key") {
		t.Errorf("listing the release namespace rendered (error %v); want a refusal naming the CA key", err)
	}
}

// TestHelmUninstallReleasesKafkaFinalizers checks the chart's pre-delete hook: a Job that
// runs the operator's image, as its ServiceAccount, with --release-kafka-finalizers (a
// flag the binary defines), so that no KafkaServerConfig outlives the operator with a
// finalizer nothing removes.
func TestHelmUninstallReleasesKafkaFinalizers(t *testing.T) {
	helm := helmBinary(t)
	out, err := exec.Command(helm, "template", "ig", chartDir, "--namespace", "ops").Output()
	if err != nil {
		t.Fatalf("helm template: %v", stderrOf(err))
	}
	objs, err := decodeAll("helm template", out)
	if err != nil {
		t.Fatal(err)
	}
	job := find[*batchv1.Job](t, objs, "helm template", "ig-intentguard-release-kafka-finalizers")
	if job.Annotations["helm.sh/hook"] != "pre-delete" || !strings.Contains(job.Annotations["helm.sh/hook-delete-policy"], "hook-succeeded") {
		t.Errorf("the Job is not a pre-delete hook: %v", job.Annotations)
	}
	deploy := find[*appsv1.Deployment](t, objs, "helm template", "ig-intentguard")
	pod, dpod := job.Spec.Template.Spec, deploy.Spec.Template.Spec
	if pod.ServiceAccountName != dpod.ServiceAccountName || pod.Containers[0].Image != dpod.Containers[0].Image {
		t.Errorf("the hook runs as %s with %s; the operator as %s with %s", pod.ServiceAccountName, pod.Containers[0].Image, dpod.ServiceAccountName, dpod.Containers[0].Image)
	}
	args := pod.Containers[0].Args
	checkArgs(t, "pre-delete Job", args, operatorFlags(t))
	if !slices.Contains(args, "--release-kafka-finalizers") {
		t.Errorf("the hook's args %v lack --release-kafka-finalizers", args)
	}
	for k, v := range deploy.Spec.Selector.MatchLabels {
		if job.Spec.Template.Labels[k] != v {
			return
		}
	}
	t.Errorf("the hook's pod %v matches the operator's selector %v", job.Spec.Template.Labels, deploy.Spec.Selector.MatchLabels)
}
