package manifests

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
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
// that only its role writes or lists Secrets: the intents operator may only get the
// Secrets a KafkaServerConfig names (the broker's TLS and SASL credentials).
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
	intents := find[*rbacv1.ClusterRole](t, objs, "config/rbac/role.yaml", "intents-operator")
	for _, r := range intents.Rules {
		if slices.Contains(r.Resources, "secrets") && !slices.Equal(r.Verbs, []string{"get"}) {
			t.Errorf("the intents operator's role does more with Secrets than get them: %+v", r)
		}
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
	for _, pkg := range []string{"internal/cluster", "internal/netpol", "internal/controller"} {
		if slices.Contains(deps, "github.com/intentguard/intentguard/"+pkg) {
			t.Errorf("the credentials operator imports %s", pkg)
		}
	}
}
