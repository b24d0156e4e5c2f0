package credentials_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/credentials/ca"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// A changed dns-names annotation rolls out new pods, and the Secret follows them.
func TestChangedRequestIsReissued(t *testing.T) {
	ns := env.Namespace(t, "creds-change")
	startOperator(t, testConfig(ns))
	a := map[string]string{ann + "tls-secret-name": "web-tls"}
	d := env.Deployment(t, ns, "web", 1, a, nil)
	first := parsed(t, secret(t, ns, "web-tls"), a, nil).Chain[0]

	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Annotations[ann+"dns-names"] = "web." + ns + ".svc"
	if err := kube.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "web-tls with the new DNS name", 30*time.Second, func() (bool, error) {
		var s corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web-tls"}, &s); err != nil {
			return false, err
		}
		p, err := credentials.Parse(mustSpec(t, a), s.Data, nil)
		if err != nil {
			return false, err
		}
		return slices.Contains(p.Chain[0].DNSNames, "web."+ns+".svc") && p.Chain[0].SerialNumber.Cmp(first.SerialNumber) != 0, nil
	})
}

// The identity override names the certificate; the bare pod owns the Secret.
func TestBarePodWithIdentityOverride(t *testing.T) {
	ns := env.Namespace(t, "creds-bare")
	startOperator(t, testConfig(ns))
	a := map[string]string{ann + "tls-secret-name": "job-tls", "intents.otterize.com/workload-name": "billing"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "runner-1", Annotations: a},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	env.Create(t, pod)
	s := secret(t, ns, "job-tls")
	leaf := parsed(t, s, a, nil).Chain[0]
	if leaf.Subject.CommonName != "billing."+ns || !strings.HasSuffix(leaf.URIs[0].Path, "/service/billing") {
		t.Errorf("certificate for %s %v, want the overridden identity billing", leaf.Subject, leaf.URIs)
	}
	if refs := s.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].UID != pod.UID {
		t.Errorf("owner references %+v, want the pod", refs)
	}
}

// Two workloads asking for one Secret name get none, and an Event says why.
func TestTwoWorkloadsOneSecretName(t *testing.T) {
	ns := env.Namespace(t, "creds-two")
	startOperator(t, testConfig(ns))
	a := map[string]string{ann + "tls-secret-name": "shared-tls"}
	env.Deployment(t, ns, "first", 1, a, nil)
	env.Deployment(t, ns, "second", 1, a, nil)
	// The first may have been served before the second arrived; once both ask, the
	// conflict is reported and the Secret is not reissued for either.
	note := podEvent(t, ns, credentials.ReasonConflict)
	if !strings.Contains(note, ns+"/first") || !strings.Contains(note, ns+"/second") {
		t.Errorf("conflict event %q does not name both workloads", note)
	}
}

// A CA Secret made by the user is used as it is: issued certificates chain to it, and it
// is never rotated or rewritten, even when its rotation is due (the user's CA is two
// hours into a life of two and a half, past the point where the operator rotates its
// own) and certificates are renewed under it all the while.
func TestUsersCASecretIsUsedAndNeverRewritten(t *testing.T) {
	ns := env.Namespace(t, "creds-byoca")
	cfg := testConfig(ns)
	cfg.BundleCheck = 100 * time.Millisecond
	users, err := pki.NewCA(pkix.Name{CommonName: "my own CA"}, 150*time.Minute, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	root := users.Cert
	keyPEM, err := pki.EncodeKey(users.Key)
	if err != nil {
		t.Fatal(err)
	}
	mine := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cfg.CASecretName},
		Data:       map[string][]byte{ca.CertKey: pki.EncodeCerts(root), ca.KeyKey: keyPEM},
	}
	env.Create(t, mine)
	startOperator(t, cfg)
	a := map[string]string{ann + "tls-secret-name": "app-tls", ann + "cert-ttl": "3"}
	env.Deployment(t, ns, "app", 1, a, nil)
	first := parsed(t, secret(t, ns, "app-tls"), a, nil)
	verify(t, first.Chain, []*x509.Certificate{root})
	// Renewed twice under the user's CA while its rotation is due.
	serials := map[string]bool{first.Chain[0].SerialNumber.String(): true}
	suite.WaitFor(t, "two renewals of app-tls", 20*time.Second, func() (bool, error) {
		var s corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "app-tls"}, &s); err != nil {
			return false, err
		}
		p, err := credentials.Parse(mustSpec(t, a), s.Data, nil)
		if err != nil {
			return false, err
		}
		verify(t, p.Chain, []*x509.Certificate{root})
		if len(p.Roots) != 1 || !p.Roots[0].Equal(root) {
			t.Fatalf("renewed bundle holds %d CAs, want the user's alone", len(p.Roots))
		}
		serials[p.Chain[0].SerialNumber.String()] = true
		return len(serials) >= 3, nil
	})
	var got corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(mine), &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != mine.ResourceVersion || len(got.Data) != 2 {
		t.Errorf("the user's CA Secret was rewritten: keys %v", keys(got.Data))
	}
}
