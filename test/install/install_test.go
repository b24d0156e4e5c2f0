// Package install installs the Helm chart on a real API server and runs the operator the
// way the chart does: as the chart's ServiceAccount (through impersonation, so a missing
// permission fails a test), with its webhooks and the certificate it manages itself.
package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mattfenwick/cyclonus/pkg/matcher"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/process"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/webhook"
)

const (
	release   = "ig"
	namespace = "intentguard-system"
	fullname  = "ig-intentguard"
	hookName  = fullname + "-webhook"
	chartDir  = "../../deploy/helm/intentguard"
)

var (
	env   *suite.Env
	local *controlplane.Cluster
	kube  client.Client
	// serviceAccount is the user the chart's pods run as.
	serviceAccount = "system:serviceaccount:" + namespace + ":" + fullname
	crdNames       = []string{"clientintents.k8s.otterize.com", "kafkaserverconfigs.k8s.otterize.com", "protectedservices.k8s.otterize.com"}
)

func TestMain(m *testing.M) {
	env = suite.Start(suite.Options{
		ControlPlane: controlplane.Options{WithoutControllerManager: true},
		// Every served version, as a client of the installed chart sees them.
		Scheme:      runtime.NewScheme(),
		AddToScheme: []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, api.AddToScheme},
	})
	local, kube = env.Cluster, env.Client
	os.Exit(env.Run(m))
}

// helm returns $HELM, else builds (once, cached) the helm of hack/helm.sh.
func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	out, err := exec.Command("bash", "../../hack/helm.sh").Output()
	if err != nil {
		t.Fatalf("building helm with hack/helm.sh: %v", err)
	}
	h := strings.TrimSpace(string(out))
	_ = os.Setenv("HELM", h)
	return h
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// render runs helm template on the chart and returns its objects.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm(t), args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("helm %v: %s", args, msg)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range docSeparator.Split(string(out), -1) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("decoding rendered document: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// apply server-side applies the objects the way `helm upgrade` keeps fields others own:
// the caBundles the operator sets survive a re-apply that does not mention them.
func apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	unroute(t)
	for _, o := range objs {
		if err := kube.Patch(context.Background(), o, client.Apply, client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("the API server refused %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	// New bindings reach the API server's authorizer a moment after they are written;
	// pods, which start later, do not see that moment.
	cfg := rest.CopyConfig(local.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount}
	sa, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the chart's RBAC to take effect", time.Minute, func() (bool, error) {
		err := sa.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: hookName}, &corev1.Secret{})
		return err == nil || apierrors.IsNotFound(err), nil
	})
}

// forbiddenRecorder remembers every request the API server refused for lack of permission.
type forbiddenRecorder struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	denied []string
}

func (f *forbiddenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.rt.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusForbidden {
		f.mu.Lock()
		f.denied = append(f.denied, req.Method+" "+req.URL.Path)
		f.mu.Unlock()
	}
	return resp, err
}

func (f *forbiddenRecorder) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.denied) > 0 {
		t.Errorf("the chart's RBAC refused the operator: %s", strings.Join(f.denied, "; "))
	}
}

// replica is one running operator pod.
type replica struct {
	port    int
	certDir string
	stop    func()
	rec     *forbiddenRecorder
	mgr     ctrl.Manager
}

// startReplica runs the operator as the chart's Deployment runs it (same flags through
// operator.Config), impersonating the chart's ServiceAccount. The API server reaches it
// on 127.0.0.1, which the certificate therefore also names.
func startReplica(t *testing.T, validity, checkInterval time.Duration, configure ...func(*operator.Config)) *replica {
	t.Helper()
	port, err := process.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{port: port, certDir: t.TempDir(), rec: &forbiddenRecorder{}}
	cfg := rest.CopyConfig(local.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { r.rec.rt = rt; return r.rec }
	svc := hookName + "." + namespace
	m := suite.RunManager(t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		c := operator.Config{
			MetricsAddr: "0", ProbeAddr: "0", InProcess: true,
			LeaderElection: true, LeaderElectionNamespace: namespace, LeaderElectionID: fullname + "-intents-operator",
			Webhook: &operator.WebhookConfig{Host: "127.0.0.1", Port: port, CertDir: r.certDir, Certs: &webhook.CertConfig{
				Namespace: namespace, SecretName: hookName,
				Hosts:                 []string{svc + ".svc", svc + ".svc.cluster.local", svc, "127.0.0.1"},
				WebhookConfigurations: []string{hookName}, CRDs: crdNames,
				Validity: validity, CheckInterval: checkInterval, BundleGrace: 500 * time.Millisecond,
			}},
		}
		for _, f := range configure {
			f(&c)
		}
		return operator.New(ctx, cfg, c)
	})
	r.mgr, r.stop = m.Manager, m.Stop
	suite.WaitFor(t, "the webhook server", time.Minute, func() (bool, error) {
		return m.GetWebhookServer().StartedChecker()(nil) == nil, nil
	})
	return r
}

// routeWebhooksTo points the installed webhooks at a replica: in a cluster the Service
// does this, and the envtest API server has no Service network.
func routeWebhooksTo(t *testing.T, r *replica) {
	t.Helper()
	ctx := context.Background()
	base := fmt.Sprintf("https://127.0.0.1:%d", r.port)
	var hook admissionv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, client.ObjectKey{Name: hookName}, &hook); err != nil {
		t.Fatal(err)
	}
	for i := range hook.Webhooks {
		cc := &hook.Webhooks[i].ClientConfig
		if cc.Service != nil {
			url := base + *cc.Service.Path
			cc.URL, cc.Service = &url, nil
		} else {
			url := base + (*cc.URL)[strings.LastIndex(*cc.URL, "/"):]
			cc.URL = &url
		}
	}
	if err := kube.Update(ctx, &hook); err != nil {
		t.Fatal(err)
	}
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		url := base + "/convert"
		crd.Spec.Conversion.Webhook.ClientConfig.URL = &url
		crd.Spec.Conversion.Webhook.ClientConfig.Service = nil
		if err := kube.Update(ctx, &crd); err != nil {
			t.Fatal(err)
		}
	}
	// The API server picks up the new address a moment later. A dry-run create of an
	// old-version file goes through both the conversion and the validating webhook.
	suite.WaitFor(t, "the webhooks to answer at their new address", time.Minute, func() (bool, error) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(`{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: probe, namespace: default}, spec: {service: {name: probe}}}`), &u.Object); err != nil {
			return false, err
		}
		return true, kube.Create(ctx, u, client.DryRunAll)
	})
}

// unroute undoes routeWebhooksTo (and envtest's own routing of conversion webhooks),
// leaving the webhooks as a cluster has them before the chart is applied again.
func unroute(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var hook admissionv1.ValidatingWebhookConfiguration
	err := kube.Get(ctx, client.ObjectKey{Name: hookName}, &hook)
	if err == nil {
		changed := false
		for i := range hook.Webhooks {
			if cc := &hook.Webhooks[i].ClientConfig; cc.URL != nil {
				path := (*cc.URL)[strings.LastIndex(*cc.URL, "/"):]
				cc.URL, cc.Service = nil, &admissionv1.ServiceReference{Namespace: namespace, Name: hookName, Path: &path}
				changed = true
			}
		}
		if changed {
			if err := kube.Update(ctx, &hook); err != nil {
				t.Fatal(err)
			}
		}
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		if c := crd.Spec.Conversion; c != nil && c.Webhook != nil && c.Webhook.ClientConfig != nil && c.Webhook.ClientConfig.URL != nil {
			path := "/convert"
			c.Webhook.ClientConfig.URL = nil
			c.Webhook.ClientConfig.Service = &apiextensionsv1.ServiceReference{Namespace: namespace, Name: hookName, Path: &path}
			if err := kube.Update(ctx, &crd); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func secret(t *testing.T) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: hookName}, &s); err != nil {
		t.Fatalf("reading the certificate Secret: %v", err)
	}
	return &s
}

// servedSerial is the serial number of the certificate the replica serves.
func servedSerial(t *testing.T, r *replica) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", r.port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dialing the webhook: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func createDoc(ns, doc string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		return nil, err
	}
	u.SetNamespace(ns)
	return u, kube.Create(context.Background(), u)
}

func getAs(version, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: v2beta1.GroupVersion.Group, Version: version, Kind: "ClientIntents"})
	return u, kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestChartInstallTwoReplicasAndUpgrade installs the rendered chart, runs two replicas as
// the chart's ServiceAccount, uses the webhooks through the certificate they manage, then
// upgrades: the chart is applied again and a new replica replaces the first. All share
// one certificate, which nobody rewrites.
func TestChartInstallTwoReplicasAndUpgrade(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, namespace)
	objs := render(t)
	apply(t, objs)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Service", "Deployment", "ValidatingWebhookConfiguration", "PodDisruptionBudget", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("the chart rendered no %s (%v)", k, kinds)
		}
	}

	first := startReplica(t, 0, 200*time.Millisecond)
	routeWebhooksTo(t, first)
	stored := secret(t)
	if !trusts(stored.Data[webhook.SecretCAKey], stored.Data[corev1.TLSCertKey]) {
		t.Fatal("the Secret's CA does not verify its certificate")
	}
	var hook admissionv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, client.ObjectKey{Name: hookName}, &hook); err != nil {
		t.Fatal(err)
	}
	for _, w := range hook.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, stored.Data[webhook.SecretCAKey]) {
			t.Errorf("webhook %s caBundle not set from the Secret", w.Name)
		}
	}
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(crd.Spec.Conversion.Webhook.ClientConfig.CABundle, stored.Data[webhook.SecretCAKey]) {
			t.Errorf("CRD %s conversion caBundle not set from the Secret", name)
		}
	}

	second := startReplica(t, 0, 200*time.Millisecond)
	if servedSerial(t, first) != servedSerial(t, second) {
		t.Error("two replicas serve different certificates")
	}

	// The webhooks answer through the managed certificate: an old file converts, a
	// duplicate is refused, and the leader writes the status.
	ns := "install-app"
	ensureNamespace(t, ns)
	if _, err := createDoc(ns, `{apiVersion: k8s.otterize.com/v1alpha3, kind: ClientIntents, metadata: {name: client}, spec: {service: {name: client}, calls: [{name: svc:server}, {type: internet, internet: {ips: [192.0.2.0/24]}}]}}`); err != nil {
		t.Fatalf("applying a v1alpha3 file: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.Delete(context.Background(), &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"}})
	})
	if _, err := getAs("v1alpha2", ns, "client"); err != nil {
		t.Fatalf("reading it as v1alpha2: %v", err)
	}
	if _, err := createDoc(ns, `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: again}, spec: {workload: {name: client}}}`); err == nil || !strings.Contains(err.Error(), "already declares the calls of workload") {
		t.Errorf("a second ClientIntents for the workload: %v", err)
	}
	suite.WaitFor(t, "the leader to report the status", time.Minute, func() (bool, error) {
		var ci v2beta1.ClientIntents
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "client"}, &ci); err != nil {
			return false, err
		}
		return ci.Status.ObservedGeneration == ci.Generation && len(ci.Status.Conditions) > 0, nil
	})
	var lease coordinationv1.Lease
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: fullname + "-intents-operator"}, &lease); err != nil {
		t.Errorf("no lease named after the release: %v", err)
	}

	// Upgrade: the chart again, then a new replica replaces the first.
	apply(t, render(t))
	routeWebhooksTo(t, second)
	first.stop()
	third := startReplica(t, 0, 200*time.Millisecond)
	if servedSerial(t, third) != servedSerial(t, second) {
		t.Error("the upgraded replica serves a different certificate")
	}
	time.Sleep(time.Second) // several check intervals of every replica
	if after := secret(t); after.ResourceVersion != stored.ResourceVersion {
		t.Errorf("the certificate Secret was rewritten (resourceVersion %s -> %s) though it was valid", stored.ResourceVersion, after.ResourceVersion)
	}
	if err := kube.Get(ctx, client.ObjectKey{Name: hookName}, &hook); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hook.Webhooks[0].ClientConfig.CABundle, stored.Data[webhook.SecretCAKey]) {
		t.Error("the upgrade lost the caBundle")
	}
	if _, err := getAs("v1beta1", ns, "client"); err != nil {
		t.Errorf("conversion after the upgrade: %v", err)
	}
	first.rec.check(t)
	second.rec.check(t)
	third.rec.check(t)
}

// TestCertificateRotatesWhileWebhooksAnswer runs a replica whose certificates last two
// seconds (the CA twenty), and converts and validates objects all the while: the served
// certificate changes about every second and the CA once, and no call fails.
func TestCertificateRotatesWhileWebhooksAnswer(t *testing.T) {
	ensureNamespace(t, namespace)
	apply(t, render(t))
	// Start from no certificate, so the CA is young and its renewal falls in the window.
	_ = kube.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: hookName}})
	r := startReplica(t, 2*time.Second, 100*time.Millisecond)
	routeWebhooksTo(t, r)
	ns := "rotation"
	ensureNamespace(t, ns)
	if _, err := createDoc(ns, `{apiVersion: k8s.otterize.com/v1alpha2, kind: ClientIntents, metadata: {name: c}, spec: {service: {name: c}, calls: [{name: server}]}}`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.DeleteAllOf(context.Background(), &v2beta1.ProtectedService{}, client.InNamespace(ns))
		_ = kube.Delete(context.Background(), &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}})
	})
	serials := map[string]bool{}
	cas := map[string]bool{}
	var failures []string
	deadline := time.Now().Add(16 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := getAs([]string{"v1alpha2", "v1alpha3", "v1beta1", "v2alpha1"}[i%4], ns, "c"); err != nil {
			failures = append(failures, "conversion: "+err.Error())
		}
		if _, err := createDoc(ns, fmt.Sprintf(`{apiVersion: k8s.otterize.com/v2beta1, kind: ProtectedService, metadata: {name: p%d}, spec: {name: s%d}}`, i, i)); err != nil {
			failures = append(failures, "validation: "+err.Error())
		}
		serials[servedSerial(t, r)] = true
		s := secret(t)
		cas[string(bytes.SplitAfter(s.Data[webhook.SecretCAKey], []byte("-----END CERTIFICATE-----"))[0])] = true
		time.Sleep(100 * time.Millisecond)
	}
	if len(failures) > 0 {
		t.Errorf("%d webhook calls failed during rotation, first: %s", len(failures), failures[0])
	}
	// A 2 s certificate is renewed with a third of its life left; certificate times have
	// whole seconds, so that is every 0.5 to 1.5 s, not at every 100 ms check.
	if len(serials) < 5 || len(serials) > 35 {
		t.Errorf("served %d certificates in 16 s of 2 s certificates, want 10 to 32", len(serials))
	}
	// The 20 s CA is renewed once, at about 13 s.
	if len(cas) != 2 {
		t.Errorf("saw %d CAs in 16 s of a 20 s CA, want 2", len(cas))
	}
	r.rec.check(t)
	t.Logf("%d certificates served, %d CAs", len(serials), len(cas))
}

// TestWebhookReachableWhenOperatorNamespaceIsEnforced protects the operator's own pod
// with intents (its namespace enforced, default deny) and checks, with cyclonus'
// evaluator, that the API server (an address outside the cluster) still reaches the
// webhook and Prometheus the metrics, through the chart's NetworkPolicy, while other
// ports are denied; without that policy the webhook would be cut off.
func TestWebhookReachableWhenOperatorNamespaceIsEnforced(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, namespace)
	objs := render(t)
	apply(t, objs)
	var selector map[string]any
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			selector, _, _ = unstructured.NestedMap(o.Object, "spec", "selector", "matchLabels")
		}
	}
	labels := map[string]string{}
	for k, v := range selector {
		labels[k] = v.(string)
	}
	r := startReplica(t, 0, time.Hour)
	routeWebhooksTo(t, r)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "operator-0", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "intents-operator", Ports: []corev1.ContainerPort{
			{Name: "webhook", ContainerPort: 9443}, {Name: "metrics", ContainerPort: 8080}, {Name: "health", ContainerPort: 8081},
		}}}},
	}
	if err := kube.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(context.Background(), pod) })
	if _, err := createDoc(namespace, `{apiVersion: k8s.otterize.com/v2beta1, kind: ClientIntents, metadata: {name: scraper}, spec: {workload: {name: scraper}, targets: [{kubernetes: {name: operator-0}}]}}`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.Delete(context.Background(), &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "scraper"}})
	})
	var policies networkingv1.NetworkPolicyList
	suite.WaitFor(t, "the operator to protect its own pod", time.Minute, func() (bool, error) {
		if err := kube.List(ctx, &policies, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		return len(policies.Items) >= 2, nil
	})
	if err := kube.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	var ns corev1.Namespace
	if err := kube.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		t.Fatal(err)
	}
	allowed := func(withChartPolicy bool, port int, portName string) bool {
		var ps []*networkingv1.NetworkPolicy
		for i := range policies.Items {
			if withChartPolicy || policies.Items[i].Name != fullname+"-webhook-and-metrics" {
				ps = append(ps, &policies.Items[i])
			}
		}
		traffic := &matcher.Traffic{
			Source:       &matcher.TrafficPeer{IP: "192.0.2.10"},
			Destination:  &matcher.TrafficPeer{Internal: &matcher.InternalPeer{PodLabels: pod.Labels, NamespaceLabels: ns.Labels, Namespace: namespace}, IP: "10.1.0.5"},
			ResolvedPort: port, ResolvedPortName: portName, Protocol: corev1.ProtocolTCP,
		}
		return matcher.BuildNetworkPolicies(true, ps).IsIngressOrEgressAllowed(traffic, true).IsAllowed()
	}
	if !allowed(true, 9443, "webhook") {
		t.Error("the API server cannot reach the webhook of an enforced operator")
	}
	if !allowed(true, 8080, "metrics") {
		t.Error("Prometheus cannot reach the metrics of an enforced operator")
	}
	if allowed(true, 8081, "health") {
		t.Error("the health port is open to everyone: the operator's pod is not enforced, so this test proves nothing")
	}
	if allowed(false, 9443, "webhook") {
		t.Error("without the chart's NetworkPolicy the webhook is still reachable: this test proves nothing")
	}
	r.rec.check(t)
}

// helmRun runs helm against the local API server.
func helmRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(helm(t), append(args, "--kubeconfig", local.Kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// adoptCRDs marks the CRDs, which exist already (as after an Otterize install or the
// chart's crds/), as the release's, as docs/getting-started.md says, so that `helm
// install` takes them over; and points their conversion at a Service again.
func adoptCRDs(t *testing.T, rel, ns string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		if crd.Labels == nil {
			crd.Labels = map[string]string{}
		}
		crd.Labels["app.kubernetes.io/managed-by"] = "Helm"
		if crd.Annotations == nil {
			crd.Annotations = map[string]string{}
		}
		crd.Annotations["meta.helm.sh/release-name"], crd.Annotations["meta.helm.sh/release-namespace"] = rel, ns
		if err := kube.Update(ctx, &crd); err != nil {
			t.Fatal(err)
		}
	}
	unroute(t)
}

// TestHelmInstallUpgradeUninstall goes through a release's life with helm itself: the
// documented marking of CRDs that exist already, install, the operator's caBundles
// surviving `helm upgrade`, and `helm uninstall` leaving the CRDs (and so the intents).
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	const rel, ns = "upg", "upgrade-test"
	hook := rel + "-intentguard-webhook"
	adoptCRDs(t, rel, ns)
	helmRun(t, "install", rel, chartDir, "-n", ns, "--create-namespace")

	// What the operator does on start: set the caBundles.
	bundle := selfSignedPEM(t)
	var vwc admissionv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, client.ObjectKey{Name: hook}, &vwc); err != nil {
		t.Fatalf("helm install made no webhook configuration: %v", err)
	}
	base := vwc.DeepCopy()
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig.CABundle = bundle
	}
	if err := kube.Patch(ctx, &vwc, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		if svc := crd.Spec.Conversion.Webhook.ClientConfig.Service; svc == nil || svc.Name != hook || svc.Namespace != ns {
			t.Errorf("CRD %s converts through %+v, want this release's Service", name, svc)
		}
		base := crd.DeepCopy()
		crd.Spec.Conversion.Webhook.ClientConfig.CABundle = bundle
		if err := kube.Patch(ctx, &crd, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
	}
	helmRun(t, "upgrade", rel, chartDir, "-n", ns, "--set", "logLevel=debug")
	if err := kube.Get(ctx, client.ObjectKey{Name: hook}, &vwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			t.Errorf("helm upgrade dropped the caBundle of webhook %s", w.Name)
		}
	}
	for _, name := range crdNames {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(crd.Spec.Conversion.Webhook.ClientConfig.CABundle, bundle) {
			t.Errorf("helm upgrade dropped the conversion caBundle of CRD %s", name)
		}
	}

	// A KafkaServerConfig the operator put its finalizer on must not outlive it waiting.
	held := heldKafkaConfig(t, kube, ns+"-kafka")
	hookDone := runKafkaHook(t, kube, ns, rel)
	helmRun(t, "uninstall", rel, "-n", ns)
	if err := <-hookDone; err != nil {
		t.Fatal(err)
	}
	if err := kube.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(kube.Get(ctx, client.ObjectKeyFromObject(held), held)), nil
	}); err != nil {
		t.Fatalf("the KafkaServerConfig still waits for its finalizer after helm uninstall: %+v", held.ObjectMeta)
	}
	for _, name := range crdNames {
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("helm uninstall removed CRD %s: %v", name, err)
		}
	}
	if err := kube.Get(ctx, client.ObjectKey{Name: hook}, &vwc); !apierrors.IsNotFound(err) {
		t.Errorf("the webhook configuration outlived the release: %v", err)
	}
}

// selfSignedPEM returns a throw-away CA certificate, as a caBundle holds.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "test-ca"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCerts(ca.Cert)
}

// trusts reports whether the PEM CA bundle verifies the PEM serving certificate.
func trusts(bundle, certPEM []byte) bool {
	roots, err := pki.ParseCerts(bundle)
	if err != nil {
		return false
	}
	leaf, err := pki.ParseCert(certPEM)
	return err == nil && pki.Verify([]*x509.Certificate{leaf}, roots, pki.ServerAuth) == nil
}

// secretWrites counts the Secret writes the API server carried out.
type secretWrites struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  int
}

func (w *secretWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	if err == nil && resp.StatusCode < 300 && strings.Contains(req.URL.Path, "/secrets") && (req.Method == http.MethodPost || req.Method == http.MethodPut) {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return resp, err
}

// TestReplicasRaceForOneCertificate starts three rotators at once on no certificate, then
// three at once on a certificate due for renewal: each time exactly one writes, and all
// of them serve what it wrote.
func TestReplicasRaceForOneCertificate(t *testing.T) {
	ensureNamespace(t, namespace)
	apply(t, render(t))
	_ = kube.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: hookName}})
	writes := &secretWrites{}
	cfg := rest.CopyConfig(local.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { writes.rt = rt; return writes }
	sa, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	race := func(validity time.Duration) []string {
		dirs := make([]string, 3)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range dirs {
			dirs[i] = t.TempDir()
			r := webhook.NewCertRotator(sa, webhook.CertConfig{
				Namespace: namespace, SecretName: hookName, Hosts: []string{hookName + "." + namespace + ".svc"},
				CertDir: dirs[i], WebhookConfigurations: []string{hookName}, CRDs: crdNames, Validity: validity, BundleGrace: time.Millisecond,
			}, ctrl.Log.WithName("race"))
			wg.Go(func() { errs[i] = r.Ensure(context.Background()) })
		}
		wg.Wait()
		var certs []string
		for i, dir := range dirs {
			if errs[i] != nil {
				t.Fatalf("rotator %d: %v", i, errs[i])
			}
			b, err := os.ReadFile(dir + "/tls.crt")
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, string(b))
		}
		return certs
	}
	certs := race(3 * time.Second)
	if writes.n != 1 || certs[0] != certs[1] || certs[1] != certs[2] {
		t.Fatalf("three replicas starting together: %d Secret writes, same certificate: %v", writes.n, certs[0] == certs[1] && certs[1] == certs[2])
	}
	time.Sleep(2500 * time.Millisecond) // past two thirds of the 3 s certificate
	renewed := race(time.Hour)
	if writes.n != 2 || renewed[0] != renewed[1] || renewed[1] != renewed[2] || renewed[0] == certs[0] {
		t.Errorf("three replicas renewing together: %d Secret writes in all, same certificate: %v, renewed: %v",
			writes.n, renewed[0] == renewed[1] && renewed[1] == renewed[2], renewed[0] != certs[0])
	}
}

// ownerCRD installs a namespaced custom kind of the group test.intentguard.dev, the kind
// of resource other projects' operators own pods through, and waits until it is served.
func ownerCRD(t *testing.T, plural, kind string) {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".test.intentguard.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "test.intentguard.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: strings.ToLower(kind), Kind: kind, ListKind: kind + "List"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
		},
	}
	if err := kube.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	suite.WaitFor(t, "the "+kind+" CRD served", time.Minute, func() (bool, error) {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "test.intentguard.dev", Version: "v1", Kind: kind + "List"})
		return kube.List(context.Background(), list) == nil, nil
	})
}

// A pod owned by a kind the chart grants nothing on (a custom resource of some other
// project) leaves the operator's cache synced, so its readiness and its webhooks: the
// operator asks once whether it may list the kind, is refused, and treats such owners as
// the roots of their pods' identities.
func TestOwnerKindTheChartDoesNotGrant(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, namespace)
	apply(t, render(t))
	ownerCRD(t, "gadgets", "Gadget")
	ns := "gadget-owned"
	ensureNamespace(t, ns)
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gizmo-0", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "test.intentguard.dev/v1", Kind: "Gadget", Name: "gizmo", UID: "00000000-0000-0000-0000-0000000000aa", Controller: &yes}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := kube.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	r := startReplica(t, 0, time.Hour)
	suite.WaitFor(t, "the operator to ask for gadgets", time.Minute, func() (bool, error) {
		r.rec.mu.Lock()
		defer r.rec.mu.Unlock()
		return len(r.rec.denied) > 0, nil
	})
	synced, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !r.mgr.GetCache().WaitForCacheSync(synced) {
		t.Fatal("the operator's cache never synced after a pod named an owner kind it may not list")
	}
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	for _, d := range r.rec.denied {
		if !strings.HasPrefix(d, "GET /apis/test.intentguard.dev/v1/gadgets") {
			t.Errorf("refused beyond the one look at gadgets: %s", d)
		}
	}
}
