package manifests

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/internal/image"
)

// mapperFlags returns the flags a mapper command defines (and zap's logging flags), with
// whether each is boolean.
func mapperFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(root + "/cmd/" + cmd + "/main.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`flag\.(String|Bool|Int|Duration|Func)(?:Var)?\((?:&[^,]+, )?"([^"]+)"`)
	flags := map[string]bool{"zap-log-level": false, "zap-encoder": false, "zap-devel": true}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		flags[m[2]] = m[1] == "Bool"
	}
	if len(flags) < 6 {
		t.Fatalf("found only %v in cmd/%s/main.go", flags, cmd)
	}
	return flags
}

// renderMapper renders the chart with the mapper on and the given values.
func renderMapper(t *testing.T, set ...string) ([]object, error) {
	t.Helper()
	args := []string{"template", "ig", chartDir, "--namespace", "ops", "--set", "mapper.enabled=true"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helmBinary(t), args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s", stderrOf(err))
	}
	return decodeAll("helm template", out)
}

// TestHelmRenderMapper renders the chart's network mapper: off by default; the agent with
// exactly the privileges docs/mapper.md names and no API access; the aggregator with one
// replica on a ReadWriteOnce volume, read-only access to what it resolves and nothing
// else; the NetworkPolicy opening each port to its own clients; the binaries and flags
// the image and the commands define.
func TestHelmRenderMapper(t *testing.T) {
	helm := helmBinary(t)
	out, err := exec.Command(helm, "template", "ig", chartDir, "--namespace", "ops").Output()
	if err != nil {
		t.Fatalf("helm template: %v", stderrOf(err))
	}
	if strings.Contains(string(out), "mapper") {
		t.Error("the default values render the mapper; it is off by default")
	}
	if _, err := renderMapper(t); err == nil || !strings.Contains(err.Error(), "agentSources") {
		t.Errorf("the mapper rendered without the agents' address ranges while its NetworkPolicy is on (error %v)", err)
	}

	objs, err := renderMapper(t, "mapper.networkPolicy.agentSources={10.0.0.0/16,fd00::/64}",
		"mapper.agent.tolerations[0].key=dedicated", "mapper.agent.tolerations[0].operator=Exists",
		"mapper.networkPolicy.readers[0].podSelector.matchLabels.app=exporter",
		"ownerResources[0].apiGroups={argoproj.io}", "ownerResources[0].resources={rollouts}")
	if err != nil {
		t.Fatal(err)
	}
	mapperImage := image.Images["mapper"]
	inImage := []string{mapperImage.Path}
	for _, f := range mapperImage.More {
		inImage = append(inImage, f.Path)
	}

	// The agent.
	ds := find[*appsv1.DaemonSet](t, objs, "helm template", "ig-intentguard-mapper-agent")
	pod := ds.Spec.Template.Spec
	agentSA := find[*corev1.ServiceAccount](t, objs, "helm template", "ig-intentguard-mapper-agent")
	if !pod.HostNetwork || !pod.HostPID || pod.HostIPC || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("agent pod: hostNetwork %v hostPID %v hostIPC %v dnsPolicy %s", pod.HostNetwork, pod.HostPID, pod.HostIPC, pod.DNSPolicy)
	}
	if pod.ServiceAccountName != agentSA.Name || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken ||
		agentSA.AutomountServiceAccountToken == nil || *agentSA.AutomountServiceAccountToken {
		t.Errorf("the agent mounts an API token (pod %v, ServiceAccount %v)", pod.AutomountServiceAccountToken, agentSA.AutomountServiceAccountToken)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 || len(pod.Volumes) != 0 {
		t.Fatalf("agent pod: %d containers, %d init containers, volumes %v", len(pod.Containers), len(pod.InitContainers), pod.Volumes)
	}
	agent := pod.Containers[0]
	sc := agent.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the agent has no securityContext with capabilities")
	}
	if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_RAW", "SYS_PTRACE"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent capabilities add %v drop %v, want exactly NET_RAW and SYS_PTRACE, drop ALL", sc.Capabilities.Add, sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.RunAsUser == nil || *sc.RunAsUser != 65534 || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("agent securityContext %+v", sc)
	}
	checkResources(t, "agent", agent.Resources)
	if len(agent.Env) != 1 || agent.Env[0].Name != "NODE_NAME" || agent.Env[0].ValueFrom == nil ||
		agent.Env[0].ValueFrom.FieldRef == nil || agent.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("agent env %+v, want NODE_NAME from spec.nodeName", agent.Env)
	}
	if len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
		t.Errorf("agent tolerations %+v, want the configured one", pod.Tolerations)
	}
	if !slices.Equal(agent.Command, []string{"/mapper-agent"}) || !slices.Contains(inImage, agent.Command[0]) {
		t.Errorf("agent command %v; the image holds %v", agent.Command, inImage)
	}
	checkArgs(t, "agent", agent.Args, mapperFlags(t, "mapper-agent"))
	for _, o := range objs {
		if b, ok := o.obj.(*rbacv1.RoleBinding); ok && slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Name == agentSA.Name }) {
			t.Errorf("RoleBinding %s grants the agent %s", b.Name, b.RoleRef.Name)
		}
		if b, ok := o.obj.(*rbacv1.ClusterRoleBinding); ok && slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Name == agentSA.Name }) {
			t.Errorf("ClusterRoleBinding %s grants the agent %s", b.Name, b.RoleRef.Name)
		}
	}

	// The aggregator.
	const aggName = "ig-intentguard-mapper-aggregator"
	d := find[*appsv1.Deployment](t, objs, "helm template", aggName)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("aggregator: replicas %v, strategy %s; want one replica, Recreate (bbolt locks its file)", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	apod := d.Spec.Template.Spec
	if apod.HostNetwork || apod.HostPID || apod.ServiceAccountName != aggName {
		t.Errorf("aggregator pod: hostNetwork %v hostPID %v ServiceAccount %s", apod.HostNetwork, apod.HostPID, apod.ServiceAccountName)
	}
	agg := apod.Containers[0]
	if !slices.Equal(agg.Command, []string{"/mapper-aggregator"}) || !slices.Contains(inImage, agg.Command[0]) || agg.Image != agent.Image {
		t.Errorf("aggregator command %v image %s; the agent's image %s holds %v", agg.Command, agg.Image, agent.Image, inImage)
	}
	flags := mapperFlags(t, "mapper-aggregator")
	checkArgs(t, "aggregator", agg.Args, flags)
	for _, want := range []string{"--listen=:8080", "--read-listen=:8081", "--edge-retention=960h"} {
		if !slices.Contains(agg.Args, want) {
			t.Errorf("aggregator args %v lack %s", agg.Args, want)
		}
	}
	asc := agg.SecurityContext
	if asc == nil || asc.Privileged != nil && *asc.Privileged || asc.AllowPrivilegeEscalation == nil || *asc.AllowPrivilegeEscalation ||
		asc.ReadOnlyRootFilesystem == nil || !*asc.ReadOnlyRootFilesystem || asc.Capabilities == nil || len(asc.Capabilities.Add) != 0 ||
		!slices.Equal(asc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("aggregator securityContext %+v", asc)
	}
	checkResources(t, "aggregator", agg.Resources)
	if p := agg.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("aggregator readiness probe %+v, want GET /readyz", p)
	}
	pvc := find[*corev1.PersistentVolumeClaim](t, objs, "helm template", aggName)
	if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) || pvc.Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("volume claim %+v, want ReadWriteOnce with a size", pvc.Spec)
	}
	var dbDir string
	for _, a := range agg.Args {
		if v, ok := strings.CutPrefix(a, "--db="); ok {
			dbDir = path.Dir(v)
		}
	}
	if len(apod.Volumes) != 1 || apod.Volumes[0].PersistentVolumeClaim == nil || apod.Volumes[0].PersistentVolumeClaim.ClaimName != pvc.Name ||
		len(agg.VolumeMounts) != 1 || agg.VolumeMounts[0].MountPath != dbDir {
		t.Errorf("the database (in %q) is not on the claim: volumes %+v, mounts %+v", dbDir, apod.Volumes, agg.VolumeMounts)
	}
	svc := find[*corev1.Service](t, objs, "helm template", aggName)
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
	}
	if !slices.Contains(agent.Args, fmt.Sprintf("--aggregator-url=http://%s.ops.svc:%d", svc.Name, ports["batches"].Port)) {
		t.Errorf("agent args %v do not name the Service's batch port %d", agent.Args, ports["batches"].Port)
	}
	for _, c := range agg.Ports {
		if p, ok := ports[c.Name]; !ok || p.TargetPort != intstr.FromString(c.Name) {
			t.Errorf("container port %s is not the Service's target (%+v)", c.Name, svc.Spec.Ports)
		}
	}

	// The aggregator's role: read what it resolves, nothing else.
	role := find[*rbacv1.ClusterRole](t, objs, "helm template", aggName)
	got, _ := yaml.Marshal(role.Rules)
	want := `- apiGroups:
  - ""
  resources:
  - pods
  - services
  - nodes
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - apps
  resources:
  - replicasets
  - deployments
  - statefulsets
  - daemonsets
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - batch
  resources:
  - jobs
  - cronjobs
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - argoproj.io
  resources:
  - rollouts
  verbs:
  - get
  - list
  - watch
`
	if string(got) != want {
		t.Errorf("aggregator ClusterRole rules:\n%s\nwant:\n%s", got, want)
	}
	binding := find[*rbacv1.ClusterRoleBinding](t, objs, "helm template", aggName)
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != aggName || binding.Subjects[0].Namespace != "ops" {
		t.Errorf("aggregator binding %+v", binding)
	}

	// Who may reach the aggregator.
	np := find[*networkingv1.NetworkPolicy](t, objs, "helm template", aggName)
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the NetworkPolicy selects %v, not the aggregator's pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
		}
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy ingress %+v, want the agents' rule and the readers'", np.Spec.Ingress)
	}
	agents, readers := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if len(agents.Ports) != 1 || agents.Ports[0].Port.String() != "batches" || len(agents.From) != 3 ||
		agents.From[0].PodSelector == nil || agents.From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "mapper-agent" ||
		agents.From[1].IPBlock == nil || agents.From[1].IPBlock.CIDR != "10.0.0.0/16" || agents.From[2].IPBlock == nil || agents.From[2].IPBlock.CIDR != "fd00::/64" {
		t.Errorf("agents' rule %+v, want the agents' label and the nodes' ranges, to the batch port only", agents)
	}
	for k, v := range agents.From[0].PodSelector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the agents' rule selects %v, not the agents' pods %v", agents.From[0].PodSelector.MatchLabels, ds.Spec.Template.Labels)
		}
	}
	if len(readers.Ports) != 1 || readers.Ports[0].Port.String() != "map" || len(readers.From) != 1 || readers.From[0].PodSelector.MatchLabels["app"] != "exporter" {
		t.Errorf("readers' rule %+v, want the configured readers, to the map's port only", readers)
	}

	// Without readers, the map's port is closed to the network; without the policy, nothing is rendered for it.
	objs, err = renderMapper(t, "mapper.networkPolicy.agentSources={10.0.0.0/16}")
	if err != nil {
		t.Fatal(err)
	}
	if np := find[*networkingv1.NetworkPolicy](t, objs, "helm template", aggName); len(np.Spec.Ingress) != 1 {
		t.Errorf("without readers the NetworkPolicy admits %+v", np.Spec.Ingress)
	}
	objs, err = renderMapper(t, "mapper.networkPolicy.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, ok := o.obj.(*networkingv1.NetworkPolicy); ok && strings.Contains(o.obj.GetName(), "mapper") {
			t.Errorf("mapper.networkPolicy.enabled=false rendered %s", o)
		}
	}
}

// TestHelmRenderMapperTLS renders the mapper with mutual TLS: both parts ask the
// credentials operator for a certificate, mount it where their --tls-dir points, the
// agent dials https at the name the aggregator's certificate holds, and the aggregator
// admits the agents' identity; readiness stays on the plain port. Without the credentials
// operator, rendering fails.
func TestHelmRenderMapperTLS(t *testing.T) {
	if _, err := renderMapper(t, "mapper.tls.enabled=true", "mapper.networkPolicy.agentSources={10.0.0.0/16}"); err == nil ||
		!strings.Contains(err.Error(), "credentialsOperator.enabled") {
		t.Errorf("mutual TLS rendered without the credentials operator (error %v)", err)
	}
	objs, err := renderMapper(t, "mapper.tls.enabled=true", "credentialsOperator.enabled=true", "mapper.networkPolicy.agentSources={10.0.0.0/16}")
	if err != nil {
		t.Fatal(err)
	}
	const secretAnn, dnsAnn = "credentials-operator.otterize.com/tls-secret-name", "credentials-operator.otterize.com/dns-names"
	// tlsDir checks that the pod mounts the Secret it asks for at --tls-dir.
	tlsDir := func(who string, tpl corev1.PodTemplateSpec) {
		t.Helper()
		c := tpl.Spec.Containers[0]
		dir := ""
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--tls-dir="); ok {
				dir = v
			}
		}
		var vol string
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir && m.ReadOnly {
				vol = m.Name
			}
		}
		secret := ""
		for _, v := range tpl.Spec.Volumes {
			if v.Name == vol && v.Secret != nil {
				secret = v.Secret.SecretName
			}
		}
		if dir == "" || secret == "" || secret != tpl.Annotations[secretAnn] {
			t.Errorf("%s: --tls-dir %q, mounted Secret %q, asked for %q", who, dir, secret, tpl.Annotations[secretAnn])
		}
	}
	ds := find[*appsv1.DaemonSet](t, objs, "helm template", "ig-intentguard-mapper-agent")
	d := find[*appsv1.Deployment](t, objs, "helm template", "ig-intentguard-mapper-aggregator")
	tlsDir("agent", ds.Spec.Template)
	tlsDir("aggregator", d.Spec.Template)
	agent, agg := ds.Spec.Template.Spec.Containers[0], d.Spec.Template.Spec.Containers[0]
	checkArgs(t, "agent", agent.Args, mapperFlags(t, "mapper-agent"))
	checkArgs(t, "aggregator", agg.Args, mapperFlags(t, "mapper-aggregator"))
	wantURL := "--aggregator-url=https://" + d.Spec.Template.Annotations[dnsAnn] + ":8080"
	if d.Spec.Template.Annotations[dnsAnn] != "ig-intentguard-mapper-aggregator.ops.svc" || !slices.Contains(agent.Args, wantURL) {
		t.Errorf("the agent dials %v; the aggregator's certificate names %q", agent.Args, d.Spec.Template.Annotations[dnsAnn])
	}
	// The credentials operator names a DaemonSet's pods <DaemonSet>.<namespace>.
	if !slices.Contains(agg.Args, "--agent-identities="+ds.Name+".ops") {
		t.Errorf("aggregator args %v do not admit the agents' identity %s.ops", agg.Args, ds.Name)
	}
	if p := agg.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "map" {
		t.Errorf("readiness probe %+v: with mutual TLS on the batch port, the kubelet has no certificate to probe it with", p)
	}
}

// checkResources requires requests and limits of CPU and memory.
func checkResources(t *testing.T, who string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, l := range []corev1.ResourceList{r.Requests, r.Limits} {
		if l.Cpu().IsZero() || l.Memory().IsZero() {
			t.Errorf("%s resources %+v, want CPU and memory requests and limits", who, r)
			return
		}
	}
}
