package credentials_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/credentials/ca"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// absent fails the test if a Secret of that name exists.
func absent(t *testing.T, ns, name, why string) {
	t.Helper()
	var s corev1.Secret
	err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s)
	if err == nil {
		var sans []string
		if p, perr := credentials.Parse(mustSpec(t, map[string]string{ann + "tls-secret-name": name}), s.Data, nil); perr == nil {
			sans = p.Chain[0].DNSNames
		}
		t.Errorf("Secret %s/%s was issued (DNS SANs %v) %s", ns, name, sans, why)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// A pod may put in its certificate the names of its own namespace's Services, never
// another namespace's Service or a public name: whoever may create a pod in a namespace
// must not obtain a server certificate the rest of the cluster trusts for another
// namespace. A refused request gets a Warning Event and no Secret; a Secret already
// issued is not reissued with the refused names.
func TestDNSNamesLimitedToThePodsNamespace(t *testing.T) {
	ns := env.Namespace(t, "creds-tenant")
	startOperator(t, testConfig(ns))

	foreign := map[string]string{ann + "tls-secret-name": "squat-tls", ann + "dns-names": "kafka.kafka.svc.cluster.local,*.com"}
	env.Deployment(t, ns, "squat", 1, foreign, nil)
	note := podEvent(t, ns, credentials.ReasonDNSNameRefused)
	if !strings.Contains(note, "kafka.kafka.svc.cluster.local") || !strings.Contains(note, "namespace kafka") {
		t.Errorf("refusal Event %q does not say which name belongs to which namespace", note)
	}

	own := map[string]string{ann + "tls-secret-name": "legit-tls", ann + "dns-names": "svc." + ns + ".svc.cluster.local, *.legit." + ns + ".svc"}
	d := env.Deployment(t, ns, "legit", 1, own, nil)
	s := secret(t, ns, "legit-tls")
	leaf := parsed(t, s, own, nil).Chain[0]
	if want := []string{"legit." + ns, "svc." + ns + ".svc.cluster.local", "*.legit." + ns + ".svc"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("DNS SANs %v, want %v", leaf.DNSNames, want)
	}
	// The legit workload was served after the squatter asked: its request was looked at.
	absent(t, ns, "squat-tls", "for another namespace's Service and *.com")

	// The legit workload turns to another namespace's name: its Secret stays as it was.
	// (The newest pod speaks for a workload, and creation times have one-second steps.)
	time.Sleep(1100 * time.Millisecond)
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Annotations[ann+"dns-names"] = "kafka-0.kafka.kafka.svc.cluster.local"
	if err := kube.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "a refusal for the patched legit pods", 30*time.Second, func() (bool, error) {
		return countEvents(ns, credentials.ReasonDNSNameRefused) >= 2, nil
	})
	var after corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(s), &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != s.ResourceVersion {
		t.Errorf("Secret legit-tls was rewritten after its pods asked for another namespace's name: SANs now %v", parsed(t, &after, own, nil).Chain[0].DNSNames)
	}
}

// The cluster admin's --allowed-dns-names widens what every namespace may ask for, with
// {namespace} standing for the pod's own.
func TestAllowedDNSNamesFlag(t *testing.T) {
	ns := env.Namespace(t, "creds-allowed")
	cfg := testConfig(ns)
	cfg.DNS.Allowed = []string{"{namespace}.apps.example.com"}
	startOperator(t, cfg)
	mine := map[string]string{ann + "tls-secret-name": "web-tls", ann + "dns-names": "web." + ns + ".apps.example.com"}
	other := map[string]string{ann + "tls-secret-name": "other-tls", ann + "dns-names": "web.victim.apps.example.com"}
	env.Deployment(t, ns, "other", 1, other, nil)
	env.Deployment(t, ns, "web", 1, mine, nil)
	leaf := parsed(t, secret(t, ns, "web-tls"), mine, nil).Chain[0]
	if !slices.Contains(leaf.DNSNames, "web."+ns+".apps.example.com") {
		t.Errorf("DNS SANs %v lack the allowed name", leaf.DNSNames)
	}
	podEvent(t, ns, credentials.ReasonDNSNameRefused)
	absent(t, ns, "other-tls", "for another namespace's allowed subdomain")
}

// cert-ttl is bounded by the operator's --max-cert-ttl: a longer request is refused with
// an Event, and no certificate outlives the CA that signs it.
func TestCertTTLBoundedByMaximumAndCA(t *testing.T) {
	ns := env.Namespace(t, "creds-maxttl")
	cfg := testConfig(ns)
	cfg.MaxTTL = time.Hour
	cfg.DefaultTTL = 30 * time.Minute
	cfg.CALifetime = 20 * time.Minute
	startOperator(t, cfg)
	long := map[string]string{ann + "tls-secret-name": "long-tls", ann + "cert-ttl": "7200"}
	env.Deployment(t, ns, "long", 1, long, nil)
	within := map[string]string{ann + "tls-secret-name": "within-tls", ann + "cert-ttl": "3600"}
	env.Deployment(t, ns, "within", 1, within, nil)
	p := parsed(t, secret(t, ns, "within-tls"), within, nil)
	note := podEvent(t, ns, credentials.ReasonTTLRefused)
	if !strings.Contains(note, "2h0m0s") || !strings.Contains(note, "1h0m0s") {
		t.Errorf("refusal Event %q does not give the request and the maximum", note)
	}
	absent(t, ns, "long-tls", "for a cert-ttl above the maximum")
	// Asked for an hour from a CA that lives 20 minutes: the certificate ends with the CA.
	root := p.Roots[0]
	if leaf := p.Chain[0]; leaf.NotAfter.After(root.NotAfter) {
		t.Errorf("certificate valid until %s, its CA only until %s", leaf.NotAfter, root.NotAfter)
	}
}

// countEvents counts the Events with the reason about distinct pods of ns.
func countEvents(ns, reason string) int {
	var events eventsv1.EventList
	if err := kube.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		return 0
	}
	pods := map[string]bool{}
	for _, e := range events.Items {
		if e.Reason == reason && e.Regarding.Kind == "Pod" {
			pods[e.Regarding.Name] = true
		}
	}
	return len(pods)
}

// When the built-in CA publishes its successor, every Secret gets the new bundle right
// away, whatever its own renewal time; at the rotation every certificate is re-signed by
// the new CA, long before the old one expires and leaves the bundle. At no moment does a
// workload hold a certificate its peer's bundle cannot verify.
func TestTrustBundleFollowsCARotationWithoutGap(t *testing.T) {
	ns := env.Namespace(t, "creds-bundle")
	cfg := testConfig(ns)
	cfg.CALifetime = 24 * time.Second // next CA published at 8 s, signing from 16 s
	cfg.BundleCheck = 200 * time.Millisecond
	startOperator(t, cfg)
	specs := map[string]map[string]string{
		"server-tls": {ann + "tls-secret-name": "server-tls"},
		"client-tls": {ann + "tls-secret-name": "client-tls"},
	}
	env.Deployment(t, ns, "server", 1, specs["server-tls"], nil)
	env.Deployment(t, ns, "client", 1, specs["client-tls"], nil)
	first := parsed(t, secret(t, ns, "server-tls"), specs["server-tls"], nil)
	secret(t, ns, "client-tls")
	oldCA := first.Roots[0]

	read := func() (map[string]*credentials.Parsed, error) {
		out := map[string]*credentials.Parsed{}
		for name, a := range specs {
			var s corev1.Secret
			if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
				return nil, err
			}
			p, err := credentials.Parse(mustSpec(t, a), s.Data, nil)
			if err != nil {
				return nil, err
			}
			out[name] = p
		}
		return out, nil
	}
	trusts := func(p *credentials.Parsed, ca *x509.Certificate) bool {
		return slices.ContainsFunc(p.Roots, func(r *x509.Certificate) bool { return r.Equal(ca) })
	}
	var published time.Time
	var nextCA *x509.Certificate
	for now := time.Now(); now.Before(oldCA.NotAfter.Add(time.Second)); now = time.Now() {
		got, err := read()
		if err != nil {
			t.Fatal(err)
		}
		// Every certificate verifies against every other workload's bundle, now.
		for a, pa := range got {
			for b, pb := range got {
				if _, err := pa.Chain[0].Verify(x509.VerifyOptions{Roots: pki.Pool(pb.Roots...), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Fatalf("at %s the certificate of %s does not verify against the bundle of %s: %v", now.Format(time.StampMilli), a, b, err)
				}
			}
		}
		var caSecret corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cfg.CASecretName}, &caSecret); err != nil {
			t.Fatal(err)
		}
		if nextCA == nil && len(caSecret.Data[ca.NextCertKey]) > 0 {
			if nextCA, err = pki.ParseCert(caSecret.Data[ca.NextCertKey]); err != nil {
				t.Fatal(err)
			}
			published = now
		}
		if nextCA != nil && now.Sub(published) > 3*time.Second {
			for name, p := range got {
				if !trusts(p, nextCA) {
					t.Fatalf("%s still lacks the next CA %s after it was published", name, now.Sub(published))
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if nextCA == nil {
		t.Fatal("the CA never published its successor")
	}
	got, err := read()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range got {
		if bytes.Equal(p.Chain[0].AuthorityKeyId, oldCA.SubjectKeyId) {
			t.Errorf("%s is still signed by the CA that expired", name)
		}
		if trusts(p, oldCA) {
			t.Errorf("%s still trusts the expired CA", name)
		}
	}
}
