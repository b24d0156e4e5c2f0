package install

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/go-logr/logr/testr"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/aggregator"
	"github.com/intentguard/intentguard/internal/mapper/mtls"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// access is one question to the API server's authorizer.
type access struct {
	verb, group, resource, ns string
}

// mayDo asks the API server whether the ServiceAccount may do a.
func mayDo(t *testing.T, user string, a access) (bool, string) {
	t.Helper()
	ns := strings.Split(strings.TrimPrefix(user, "system:serviceaccount:"), ":")[0]
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.ns},
	}}
	if err := kube.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed, sar.Status.Reason
}

// TestHelmInstallMapper installs the chart with the network mapper on, with helm, on a
// real API server, which accepts every object, and asks the API server's authorizer what
// the mapper's ServiceAccounts may do: the aggregator reads pods, Services, Nodes and the
// owner kinds, and nothing else, and writes nothing; the agent may do nothing at all. The
// aggregator's informers and owner lookups, run as its ServiceAccount, are refused
// nothing.
func TestHelmInstallMapper(t *testing.T) {
	ctx := context.Background()
	const rel, ns = "map", "mapper-system"
	adoptCRDs(t, rel, ns)
	notes := helmRun(t, "install", rel, chartDir, "-n", ns, "--create-namespace",
		"--set", "mapper.enabled=true", "--set", "mapper.networkPolicy.agentSources={10.0.0.0/16}",
		"--set", "mapper.networkPolicy.readers[0].namespaceSelector.matchLabels.team=platform",
		"--set", "ownerResources[0].apiGroups={argoproj.io}", "--set", "ownerResources[0].resources={rollouts}")
	defer func() {
		hookDone := runKafkaHook(t, kube, ns, rel)
		helmRun(t, "uninstall", rel, "-n", ns)
		if err := <-hookDone; err != nil {
			t.Error(err)
		}
	}()
	name := rel + "-intentguard-mapper-"
	if !strings.Contains(notes, "port-forward svc/"+name+"aggregator 8081") {
		t.Errorf("the release notes do not say how to read the map:\n%s", notes)
	}
	for _, o := range []client.Object{
		&appsv1.DaemonSet{}, &corev1.ServiceAccount{},
	} {
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "agent"}, o); err != nil {
			t.Errorf("helm install made no %T for the agent: %v", o, err)
		}
	}
	for _, o := range []client.Object{
		&appsv1.Deployment{}, &corev1.ServiceAccount{}, &corev1.Service{}, &corev1.PersistentVolumeClaim{}, &networkingv1.NetworkPolicy{},
		&rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{},
	} {
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "aggregator"}, o); err != nil {
			t.Errorf("helm install made no %T for the aggregator: %v", o, err)
		}
	}

	aggregatorSA := "system:serviceaccount:" + ns + ":" + name + "aggregator"
	agentSA := "system:serviceaccount:" + ns + ":" + name + "agent"
	reads := []access{
		{"", "", "pods", "shop"}, {"", "", "pods", ""}, {"", "", "services", "shop"}, {"", "", "nodes", ""},
		{"", "apps", "replicasets", "shop"}, {"", "apps", "deployments", "shop"}, {"", "apps", "statefulsets", "shop"},
		{"", "apps", "daemonsets", "shop"}, {"", "batch", "jobs", "shop"}, {"", "batch", "cronjobs", "shop"},
		{"", "argoproj.io", "rollouts", "shop"},
	}
	others := []access{
		{"", "", "secrets", "shop"}, {"", "", "secrets", ns}, {"", "", "secrets", ""}, {"", "", "configmaps", ns},
		{"", "", "endpoints", "shop"}, {"", "", "events", ns}, {"", "", "namespaces", ""}, {"", "", "serviceaccounts", ns},
		{"", "networking.k8s.io", "networkpolicies", "shop"}, {"", "coordination.k8s.io", "leases", ns},
		{"", "k8s.otterize.com", "clientintents", "shop"}, {"", "rbac.authorization.k8s.io", "clusterroles", ""},
	}
	writes := []string{"create", "update", "patch", "delete", "deletecollection"}
	check := func(user string, a access, want bool) {
		if got, reason := mayDo(t, user, a); got != want {
			t.Errorf("%s: %s %s/%s in %q: allowed %v, want %v (%s)", user, a.verb, a.group, a.resource, a.ns, got, want, reason)
		}
	}
	for _, a := range reads {
		for _, verb := range []string{"get", "list", "watch"} {
			a.verb = verb
			check(aggregatorSA, a, true)
			check(agentSA, a, false)
		}
		for _, verb := range writes {
			a.verb = verb
			check(aggregatorSA, a, false)
			check(agentSA, a, false)
		}
	}
	for _, a := range others {
		for _, verb := range append([]string{"get", "list", "watch"}, writes...) {
			a.verb = verb
			check(aggregatorSA, a, false)
			check(agentSA, a, false)
		}
	}

	// The aggregator's reads, as its ServiceAccount: the informers sync and an owner is
	// followed, with no request refused.
	ensureNamespace(t, "mapper-shop")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mapper-shop", Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}
	if err := kube.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	yes := true
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mapper-shop", Name: "web-1", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: dep.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}
	if err := kube.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	rec := &forbiddenRecorder{}
	cfg := rest.CopyConfig(local.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: aggregatorSA, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.rt = rt; return rec }
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	informers, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Transform: aggregator.TrimPod}, &corev1.Node{}: {Transform: aggregator.TrimNode},
	}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	owners := identity.NewOwners(informers, api, testr.New(t))
	cluster := aggregator.NewCluster(owners.Lookup)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	synced, err := cluster.Watch(runCtx, informers)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := informers.Start(runCtx); err != nil {
			t.Errorf("informers: %v", err)
		}
	})
	waitCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if !toolscache.WaitForCacheSync(waitCtx.Done(), synced...) {
		t.Fatalf("the aggregator's informers did not sync as its ServiceAccount; refused: %v", rec.denied)
	}
	refs, found, err := owners.Lookup(ctx, "mapper-shop", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, "web-1")
	if err != nil || !found || len(refs) != 1 || refs[0].Name != "web" {
		t.Errorf("following the ReplicaSet's owner as the aggregator: %v, found %v, %v", refs, found, err)
	}
	rollout := schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}
	if ok, err := owners.Readable(ctx, rollout); ok || err != nil {
		t.Errorf("rollouts are not served here, yet readable %v (%v)", ok, err)
	}
	rec.check(t)
}

// rendered returns the rendered object of kind and name, decoded into out.
func rendered(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("the chart rendered no %s %s", kind, name)
}

// argValue returns the value of --name in args.
func argValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("no --%s in %v", name, args)
	return ""
}

// credentialsDir waits for the Secret the credentials operator writes and puts its files
// in a directory, as the pod's Secret volume would.
func credentialsDir(t *testing.T, name string) string {
	t.Helper()
	var s corev1.Secret
	suite.WaitFor(t, "Secret "+name, time.Minute, func() (bool, error) {
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &s)
		return err == nil, client.IgnoreNotFound(err)
	})
	dir := t.TempDir()
	for _, f := range []string{mtls.CertFile, mtls.KeyFile, mtls.CAFile} {
		if err := os.WriteFile(filepath.Join(dir, f), s.Data[f], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// With mapper.tls.enabled, the chart's pods get their certificates from the chart's
// credentials operator (run with its RBAC), and with them, as the chart passes them, the
// agent reaches the aggregator at the Service name it dials and is admitted as an agent:
// the annotations, the DNS name, the identities and the flags agree.
func TestMapperMutualTLSWithIssuedCertificates(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, namespace)
	objs := render(t, "credentialsOperator.enabled=true", "mapper.enabled=true", "mapper.tls.enabled=true", "mapper.networkPolicy.agentSources={10.0.0.0/16}")
	apply(t, objs)
	agentName, aggName := fullname+"-mapper-agent", fullname+"-mapper-aggregator"
	var ds appsv1.DaemonSet
	var dep appsv1.Deployment
	rendered(t, objs, "DaemonSet", agentName, &ds)
	rendered(t, objs, "Deployment", aggName, &dep)

	// Nothing runs the controllers here: the pods are made by hand from the templates,
	// with the owner references their controllers would give them.
	var liveDS appsv1.DaemonSet
	var liveDep appsv1.Deployment
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: agentName}, &liveDS); err != nil {
		t.Fatal(err)
	}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: aggName}, &liveDep); err != nil {
		t.Fatal(err)
	}
	yes := true
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: aggName + "-1", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: aggName, UID: liveDep.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}
	if err := kube.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: agentName + "-node1", Labels: ds.Spec.Template.Labels, Annotations: ds.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: agentName, UID: liveDS.UID, Controller: &yes}}},
			Spec: ds.Spec.Template.Spec},
		{ObjectMeta: metav1.ObjectMeta{Name: aggName + "-1-x", Labels: dep.Spec.Template.Labels, Annotations: dep.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Spec: dep.Spec.Template.Spec},
	} {
		p.Namespace = namespace
		if err := kube.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kube.Delete(context.Background(), p) })
	}
	t.Cleanup(func() { _ = kube.Delete(context.Background(), rs) })

	rec := &forbiddenRecorder{}
	cc := credentials.Defaults()
	cc.Namespace, cc.MetricsAddr, cc.ProbeAddr, cc.InProcess = namespace, "0", "0", true
	suite.RunManager(t, "credentials operator", func(ctx context.Context) (ctrl.Manager, error) {
		return credentials.New(ctx, as(credentialsAccount, rec), cc)
	})
	agentVol, aggVol := ds.Spec.Template.Spec.Volumes, dep.Spec.Template.Spec.Volumes
	agentDir := credentialsDir(t, agentVol[len(agentVol)-1].Secret.SecretName)
	aggDir := credentialsDir(t, aggVol[len(aggVol)-1].Secret.SecretName)

	aggArgs, agentArgs := dep.Spec.Template.Spec.Containers[0].Args, ds.Spec.Template.Spec.Containers[0].Args
	aggCreds, err := mtls.Load(aggDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", mtls.ServerConfig(aggCreds, strings.Split(argValue(t, aggArgs, "agent-identities"), ",")))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// The agent dials the Service's name, which resolves to the aggregator (here, to the
	// listener above).
	aggURL, err := url.Parse(argValue(t, agentArgs, "aggregator-url"))
	if err != nil {
		t.Fatal(err)
	}
	agentCreds, err := mtls.Load(agentDir)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig: mtls.ClientConfig(agentCreds, aggURL.Hostname()),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		},
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(aggURL.String() + "/")
	if err != nil {
		t.Fatalf("the agent, with its issued certificate, reaching %s: %v", aggURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if aggURL.Scheme != "https" || string(body) != agentName+"."+namespace {
		t.Errorf("the aggregator at %s admitted %q, want the agents' identity %s.%s", aggURL, body, agentName, namespace)
	}
	rec.check(t)
}
