package install

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// credentialsAccount is the user the chart's credentials operator runs as.
var credentialsAccount = "system:serviceaccount:" + namespace + ":" + fullname + "-credentials"

// as returns a configuration impersonating user, recording what the API server refuses.
func as(user string, rec *forbiddenRecorder) *rest.Config {
	cfg := rest.CopyConfig(local.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.rt = rt; return rec }
	return cfg
}

// ownerObject creates an object of a test.intentguard.dev kind, owned by owner if given.
func ownerObject(t *testing.T, ns, kind, name string, owner *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("test.intentguard.dev/v1")
	o.SetKind(kind)
	o.SetNamespace(ns)
	o.SetName(name)
	if owner != nil {
		o.SetOwnerReferences(controlledBy(owner))
	}
	if err := kube.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

func controlledBy(o client.Object) []metav1.OwnerReference {
	yes := true
	gvk := o.GetObjectKind().GroupVersionKind()
	return []metav1.OwnerReference{{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: o.GetName(), UID: o.GetUID(), Controller: &yes}}
}

// podBelow creates a ReplicaSet owned by owner and one pod of it asking for a certificate
// in the Secret <secret>. Nothing runs the ReplicaSet: the pod is made by hand, with the
// owner reference the ReplicaSet controller would give it.
func podBelow(t *testing.T, ns, rsName, secret string, owner *unstructured.Unstructured) string {
	t.Helper()
	labels := map[string]string{"rs": rsName}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rsName, OwnerReferences: controlledBy(owner)},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}},
	}
	if err := kube.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	rs.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rsName + "-1", Labels: labels, OwnerReferences: controlledBy(rs),
			Annotations: map[string]string{credentials.Prefix + credentials.AnnSecretName: secret}},
		Spec: rs.Spec.Template.Spec,
	}
	if err := kube.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return pod.Name
}

// issuedCN waits for the Secret the credentials operator writes and returns its
// certificate's CN.
func issuedCN(t *testing.T, ns, name string) string {
	t.Helper()
	var s corev1.Secret
	suite.WaitFor(t, "Secret "+ns+"/"+name, time.Minute, func() (bool, error) {
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s)
		return err == nil, err
	})
	cert, err := pki.ParseCert(s.Data["cert.pem"])
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	return cert.Subject.CommonName
}

// The credentials operator and the intents operator, each with the chart's RBAC, name a
// pod the same: a pod below a custom kind that is itself owned (an operator's rollout
// object owned by its app object, as Knative's Revision by its Configuration) gets a
// certificate whose CN is the workload the intents operator resolves it to, and so the
// Kafka principal the intents operator writes ACLs for; a pod whose owners go through a
// kind neither may read stops at that kind in both, and neither is left unready by it.
func TestOneIdentityForBothOperators(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, namespace)
	apply(t, render(t, "credentialsOperator.enabled=true",
		"ownerResources[0].apiGroups[0]=test.intentguard.dev", "ownerResources[0].resources[0]=widgets"))
	ownerCRD(t, "widgets", "Widget")
	ownerCRD(t, "gadgets", "Gadget")
	ns := "one-identity"
	ensureNamespace(t, ns)
	// Nothing here deletes a namespace's contents: remove what other tests' operators
	// would otherwise find owned by widgets, which they may not be granted.
	t.Cleanup(func() {
		for _, o := range []client.Object{&corev1.Pod{}, &appsv1.ReplicaSet{}} {
			if err := kube.DeleteAllOf(context.Background(), o, client.InNamespace(ns)); err != nil {
				t.Errorf("cleaning up %T: %v", o, err)
			}
		}
	})
	shop := ownerObject(t, ns, "Widget", "shop", nil)
	shopV2 := ownerObject(t, ns, "Widget", "shop-v2", shop)
	lab := ownerObject(t, ns, "Widget", "lab", nil)
	labG := ownerObject(t, ns, "Gadget", "lab-g", lab)
	want := map[string]string{ // pod -> the workload both must name
		podBelow(t, ns, "shop-v2-5d8f", "shop-tls", shopV2): "shop",
		podBelow(t, ns, "lab-g-7c9d", "lab-tls", labG):      "lab-g",
	}
	secretOf := map[string]string{"shop": "shop-tls", "lab-g": "lab-tls"}

	credRec := &forbiddenRecorder{}
	cc := credentials.Defaults()
	cc.Namespace, cc.MetricsAddr, cc.ProbeAddr, cc.InProcess = namespace, "0", "0", true
	creds := suite.RunManager(t, "credentials operator", func(ctx context.Context) (ctrl.Manager, error) {
		return credentials.New(ctx, as(credentialsAccount, credRec), cc)
	})

	// The intents operator's identity index, built as its controllers build it.
	intentsRec := &forbiddenRecorder{}
	skip := true
	var ids *informer.Identities
	intents := suite.RunManager(t, "intents operator", func(ctx context.Context) (ctrl.Manager, error) {
		mgr, err := ctrl.NewManager(as(serviceAccount, intentsRec), ctrl.Options{
			Scheme: informer.Scheme(), Cache: informer.CacheOptions(), Metrics: metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: &skip},
		})
		if err != nil {
			return nil, err
		}
		ids = informer.NewIdentities(mgr.GetCache(), mgr.GetAPIReader(), ctrl.Log.WithName("identities"))
		return mgr, ids.Start(ctx)
	})

	for pod, workload := range want {
		cn := issuedCN(t, ns, secretOf[workload])
		var id identity.Identity
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if id, _ = ids.Of(ns, pod); id.Name == workload {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		acl := principal.CommonName(id)
		if cn != acl || cn != workload+"."+ns {
			t.Errorf("pod %s (workload %s): certificate CN %q, intents operator's principal CN %q", pod, workload, cn, acl)
		}
	}
	for name, m := range map[string]*suite.Manager{"credentials": creds, "intents": intents} {
		synced, cancel := context.WithTimeout(ctx, 10*time.Second)
		if !m.GetCache().WaitForCacheSync(synced) {
			t.Errorf("the %s operator's cache never synced after a pod named an owner kind it may not list", name)
		}
		cancel()
	}
	for name, rec := range map[string]*forbiddenRecorder{"credentials": credRec, "intents": intentsRec} {
		rec.mu.Lock()
		for _, d := range rec.denied {
			if !strings.HasPrefix(d, "GET /apis/test.intentguard.dev/v1/gadgets") {
				t.Errorf("the chart's RBAC refused the %s operator beyond the one look at gadgets: %s", name, d)
			}
		}
		rec.mu.Unlock()
	}
}
