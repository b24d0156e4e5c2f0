package install

import (
	"context"
	"net/http"
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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/go-logr/logr/testr"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/aggregator"
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
