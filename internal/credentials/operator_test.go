package credentials_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

const ann = credentials.Prefix

// parsed reads a Secret the way a workload would, with the spec its pod annotations give.
func parsed(t *testing.T, s *corev1.Secret, annotations map[string]string, password []byte) *credentials.Parsed {
	t.Helper()
	spec, err := credentials.ParseSpec(annotations)
	if err != nil {
		t.Fatal(err)
	}
	p, err := credentials.Parse(spec, s.Data, password)
	if err != nil {
		t.Fatalf("reading Secret %s as %s: %v", s.Name, spec.Format, err)
	}
	return p
}

func TestDeploymentGetsOneSecretWithItsIdentity(t *testing.T) {
	ns := env.Namespace(t, "creds-pem")
	startOperator(t, testConfig(ns))
	annotations := map[string]string{ann + "tls-secret-name": "client-tls", ann + "dns-names": "client." + ns + ".svc.cluster.local, *.client." + ns + ".svc"}
	d := env.Deployment(t, ns, "client", 3, annotations, nil)

	s := secret(t, ns, "client-tls")
	p := parsed(t, s, annotations, nil)
	leaf := p.Chain[0]
	verify(t, p.Chain, p.Roots)

	if got, want := leaf.URIs, "spiffe://intentguard.local/otterize/namespace/"+ns+"/service/client"; len(got) != 1 || got[0].String() != want {
		t.Errorf("URI SANs = %v, want exactly %s", got, want)
	}
	if want := []string{"client." + ns, "client." + ns + ".svc.cluster.local", "*.client." + ns + ".svc"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("DNS SANs = %v, want %v", leaf.DNSNames, want)
	}
	// The contract with the Kafka ACL writer, checked without any DN renderer: the
	// subject's RDNs in certificate order are O then CN, which a broker (RFC 2253, last
	// RDN first) reads as User:CN=client.<ns>,O=intentguard (TestJavaKeytoolReadsKeystores
	// checks that rendering against the JVM's).
	if got, want := subjectRDNs(t, leaf), "[[{2.5.4.10 intentguard}] [{2.5.4.3 client."+ns+"}]]"; got != want {
		t.Errorf("subject RDNs of the issued certificate %s, want %s", got, want)
	}
	if k, ok := p.Key.(crypto.Signer); !ok || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Errorf("key %T is not the private key of the certificate", p.Key)
	}

	// One Secret per workload, owned by it and marked as this operator's.
	var all corev1.SecretList
	if err := kube.List(context.Background(), &all, client.InNamespace(ns), client.MatchingLabels{ownership.Label: ownership.CredentialsOperator}); err != nil {
		t.Fatal(err)
	}
	issued := slices.DeleteFunc(all.Items, func(s corev1.Secret) bool { return s.Name == testConfig(ns).CASecretName })
	if len(issued) != 1 {
		t.Errorf("%d issued Secrets for one workload of 3 pods, want 1", len(issued))
	}
	if refs := s.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Deployment" || refs[0].UID != d.UID {
		t.Errorf("owner references = %+v, want the Deployment %s", refs, d.UID)
	}
	for k := range s.Annotations {
		if strings.Contains(strings.ToLower(k), "password") {
			t.Errorf("Secret annotation %s mentions a password", k)
		}
	}
}

func TestKeystoresOpenWithTheirPasswords(t *testing.T) {
	ns := env.Namespace(t, "creds-keystores")
	startOperator(t, testConfig(ns))
	env.Create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-password"},
		Data:       map[string][]byte{credentials.PasswordKey: []byte("correct horse battery")},
	})
	jks := map[string]string{ann + "tls-secret-name": "java-tls", ann + "cert-type": "jks", credentials.PasswordSecretAnnotation: "my-password"}
	p12 := map[string]string{"spire-integration.otterize.com/tls-secret-name": "p12-tls", "spire-integration.otterize.com/cert-type": "pkcs12",
		"spire-integration.otterize.com/keystore-file-name": "client.p12"}
	env.Deployment(t, ns, "java", 1, jks, nil)
	env.Deployment(t, ns, "p12", 1, p12, nil)

	js := secret(t, ns, "java-tls")
	if _, err := credentials.Parse(mustSpec(t, jks), js.Data, []byte("wrong password")); err == nil {
		t.Error("the JKS keystore opens with a wrong password")
	}
	p := parsed(t, js, jks, []byte("correct horse battery"))
	verify(t, p.Chain, p.Roots)
	if got := p.Chain[0].Subject.CommonName; got != "java."+ns {
		t.Errorf("JKS certificate CN = %q", got)
	}

	ps := secret(t, ns, "p12-tls")
	if _, ok := ps.Data["client.p12"]; !ok {
		t.Errorf("PKCS#12 Secret keys = %v, want client.p12 from keystore-file-name", keys(ps.Data))
	}
	// No password named: one was generated into <secret>-password, owned like the Secret.
	pw := secret(t, ns, "p12-tls-password")
	if pw.Labels[ownership.Label] != ownership.CredentialsOperator || len(pw.Data[credentials.PasswordKey]) < 16 {
		t.Errorf("generated password Secret: labels %v, %d-byte password", pw.Labels, len(pw.Data[credentials.PasswordKey]))
	}
	p = parsed(t, ps, p12, pw.Data[credentials.PasswordKey])
	verify(t, p.Chain, p.Roots)

	// A deleted generated password is replaced, and the keystore rewritten to open with it.
	if err := kube.Delete(context.Background(), pw); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "a new password and a keystore that opens with it", 30*time.Second, func() (bool, error) {
		var npw, nks corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "p12-tls-password"}, &npw); err != nil {
			return false, nil
		}
		if npw.UID == pw.UID {
			return false, nil
		}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "p12-tls"}, &nks); err != nil {
			return false, err
		}
		_, err := credentials.Parse(mustSpec(t, p12), nks.Data, npw.Data[credentials.PasswordKey])
		return err == nil, nil
	})
}

func mustSpec(t *testing.T, a map[string]string) credentials.Spec {
	t.Helper()
	s, err := credentials.ParseSpec(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestUsersSecretIsLeftAloneAndBadInputReported(t *testing.T) {
	ns := env.Namespace(t, "creds-conflict")
	startOperator(t, testConfig(ns))
	mine := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}, Data: map[string][]byte{"cert.pem": []byte("user data")}}
	env.Create(t, mine)
	env.Deployment(t, ns, "squatter", 1, map[string]string{ann + "tls-secret-name": "taken"}, nil)
	env.Deployment(t, ns, "bad", 1, map[string]string{ann + "tls-secret-name": "bad-tls", ann + "cert-type": "der"}, nil)
	env.Deployment(t, ns, "plain", 1, map[string]string{ann + "tls-secret-name": "plain-tls", ann + "cert-type": "jks", ann + "jks-password": "hunter22"}, nil)

	if note := podEvent(t, ns, credentials.ReasonConflict); !strings.Contains(note, "taken") {
		t.Errorf("conflict event: %q", note)
	}
	podEvent(t, ns, credentials.ReasonInvalid)
	// A good request in the same namespace is still served, so the failures above are
	// known to have been looked at.
	env.Deployment(t, ns, "good", 1, map[string]string{ann + "tls-secret-name": "good-tls"}, nil)
	secret(t, ns, "good-tls")

	var got corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(mine), &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Data["cert.pem"]) != "user data" || len(got.Data) != 1 || got.Labels[ownership.Label] != "" || len(got.OwnerReferences) != 0 {
		t.Errorf("the user's Secret was changed: %+v", got)
	}
	for _, name := range []string{"bad-tls", "plain-tls", "plain-tls-password"} {
		var s corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err == nil {
			t.Errorf("Secret %s was written for an invalid request", name)
		}
	}
	var events eventsv1.EventList
	if err := kube.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Note, "hunter22") {
			t.Errorf("an event repeats the password: %q", e.Note)
		}
	}
}

func TestRenewalAndRestartAndQuietRestart(t *testing.T) {
	ns := env.Namespace(t, "creds-renew")
	cfg := testConfig(ns)
	_, stop := startOperator(t, cfg)
	short := map[string]string{ann + "tls-secret-name": "short-tls", ann + "cert-ttl": "6", ann + "restart-pod-on-certificate-renewal": "true"}
	d := env.Deployment(t, ns, "short", 1, short, nil)
	env.Deployment(t, ns, "long", 2, map[string]string{ann + "tls-secret-name": "long-tls"}, nil)
	first := parsed(t, secret(t, ns, "short-tls"), short, nil).Chain[0]
	secret(t, ns, "long-tls")
	if life := first.NotAfter.Sub(first.NotBefore); life > 2*time.Minute {
		t.Fatalf("a 6 s cert-ttl gave a certificate valid for %s", life)
	}

	// Renewed at 2/3 of its life (less jitter), well before it expires.
	var renewed *x509.Certificate
	suite.WaitFor(t, "renewal of short-tls", 15*time.Second, func() (bool, error) {
		var s corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "short-tls"}, &s); err != nil {
			return false, err
		}
		p, err := credentials.Parse(mustSpec(t, short), s.Data, nil)
		if err != nil {
			return false, err
		}
		renewed = p.Chain[0]
		return renewed.SerialNumber.Cmp(first.SerialNumber) != 0, nil
	})
	if !time.Now().Before(first.NotAfter) {
		t.Errorf("renewed only after the old certificate expired (%s)", first.NotAfter)
	}
	// The workload asked to be restarted on renewal: its template carries the mark.
	suite.WaitFor(t, "restart of Deployment short", 10*time.Second, func() (bool, error) {
		var got appsv1.Deployment
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(d), &got); err != nil {
			return false, err
		}
		return got.Spec.Template.Annotations[credentials.AnnRestartedAt] != "", nil
	})
	stop()

	// short is renewed every few seconds; take it away so that nothing is due.
	if err := kube.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	suite.WaitFor(t, "pods of short to go", 30*time.Second, func() (bool, error) {
		var pods corev1.PodList
		err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "short"})
		return len(pods.Items) == 0, err
	})

	// A restarted operator with nothing due writes nothing in this namespace but for a
	// workload that arrives after it started (which shows it is working).
	var before corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "long-tls"}, &before); err != nil {
		t.Fatal(err)
	}
	counter, stop := startOperator(t, cfg)
	time.Sleep(2 * time.Second)
	env.Deployment(t, ns, "late", 1, map[string]string{ann + "tls-secret-name": "late-tls"}, nil)
	secret(t, ns, "late-tls")
	time.Sleep(time.Second)
	var after corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "long-tls"}, &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a restart rewrote long-tls, which was not due")
	}
	var ours []string
	for _, w := range counter.Requests() {
		if strings.Contains(w, "/namespaces/"+ns+"/") {
			ours = append(ours, w)
		}
	}
	// The late workload's Secret and its CertificateIssued Event, nothing else.
	if len(ours) != 2 || !slices.ContainsFunc(ours, func(w string) bool { return strings.HasSuffix(w, "/secrets") }) {
		t.Errorf("writes in %s after the restart: %v, want only late-tls's Secret and Event", ns, ours)
	}
	stop()
}

func TestTLSBetweenWorkloadsAndUntrustedPeerRefused(t *testing.T) {
	ns := env.Namespace(t, "creds-tls")
	startOperator(t, testConfig(ns))
	checkMutualTLS(t, ns)
}

// checkMutualTLS issues certificates to a server and a client workload in ns, and checks
// that the client's certificate opens a mutual-TLS connection to the server while a
// certificate from another CA, with the same names, is refused.
func checkMutualTLS(t *testing.T, ns string) {
	t.Helper()
	sa := map[string]string{ann + "tls-secret-name": "server-tls"}
	ca := map[string]string{ann + "tls-secret-name": "client-tls"}
	env.Deployment(t, ns, "server", 1, sa, nil)
	env.Deployment(t, ns, "client", 1, ca, nil)
	server := parsed(t, secret(t, ns, "server-tls"), sa, nil)
	client := parsed(t, secret(t, ns, "client-tls"), ca, nil)

	// A peer with a certificate from another CA (same names, not this bundle).
	other, err := pki.NewCA(pkix.Name{CommonName: "another CA"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := other.Issue(pki.Request{Subject: pkix.Name{CommonName: "client." + ns}, DNSNames: []string{"client." + ns}, Usage: pki.ClientAuth, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{tlsCert(server)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.Pool(server.Roots...),
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = c.Write([]byte("hello " + c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName))
			}()
		}
	}()
	dial := func(cert tls.Certificate) (string, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pki.Pool(client.Roots...),
			ServerName:   "server." + ns,
			MinVersion:   tls.VersionTLS13,
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	if got, err := dial(tlsCert(client)); err != nil || got != "hello client."+ns {
		t.Errorf("client with its issued certificate: %q, %v; want the server to greet it", got, err)
	}
	// The server refuses the handshake; in TLS 1.3 the client learns it on its first read.
	if got, err := dial(tls.Certificate{Certificate: [][]byte{rogue.Cert.Raw}, PrivateKey: rogue.Key}); err == nil || got != "" {
		t.Errorf("a client with an untrusted certificate was served: %q, %v", got, err)
	}
}

// The built-in CA rotates in two steps: the next CA is published in the bundle while the
// current one still signs, so a workload renewing in between trusts the next CA before
// any peer presents a certificate it signed.
func TestCARotationPublishesTheNextCABeforeItSigns(t *testing.T) {
	ns := env.Namespace(t, "creds-carotate")
	cfg := testConfig(ns)
	cfg.CALifetime = 9 * time.Second // next CA published at 3 s, signing from 6 s
	startOperator(t, cfg)
	a := map[string]string{ann + "tls-secret-name": "app-tls", ann + "cert-ttl": "2"}
	env.Deployment(t, ns, "app", 1, a, nil)
	secret(t, ns, "app-tls")

	type version struct {
		signer string          // the signing CA's key ID
		trusts map[string]bool // key IDs in the bundle
	}
	var versions []version
	seen := map[string]bool{}
	suite.WaitFor(t, "a certificate signed by the next CA", 30*time.Second, func() (bool, error) {
		var s corev1.Secret
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "app-tls"}, &s); err != nil {
			return false, err
		}
		if seen[s.ResourceVersion] {
			return false, nil
		}
		seen[s.ResourceVersion] = true
		p, err := credentials.Parse(mustSpec(t, a), s.Data, nil)
		if err != nil {
			return false, err
		}
		verify(t, p.Chain, p.Roots)
		v := version{signer: string(p.Chain[0].AuthorityKeyId), trusts: map[string]bool{}}
		for _, r := range p.Roots {
			v.trusts[string(r.SubjectKeyId)] = true
		}
		versions = append(versions, v)
		return v.signer != versions[0].signer, nil
	})
	next := versions[len(versions)-1].signer
	published := false
	for _, v := range versions[:len(versions)-1] {
		if v.signer == versions[0].signer && v.trusts[next] {
			published = true
		}
	}
	if !published {
		t.Errorf("no certificate issued before the rotation had the next CA in its bundle (%d versions seen)", len(versions))
	}
	if last := versions[len(versions)-1]; !last.trusts[versions[0].signer] {
		t.Errorf("after the rotation the bundle dropped the previous CA, whose certificates are still valid")
	}
	var caSecret corev1.Secret
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cfg.CASecretName}, &caSecret); err != nil {
		t.Fatal(err)
	}
	if len(caSecret.Data["previous.crt"]) == 0 {
		t.Errorf("the rotated CA Secret keeps no previous CA")
	}
}

// subjectRDNs prints a certificate's subject as its raw RDN sequence (OIDs and values,
// in certificate order), so that tests compare it without a DN renderer.
func subjectRDNs(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint([]pkix.RelativeDistinguishedNameSET(rdns))
}

func tlsCert(p *credentials.Parsed) tls.Certificate {
	c := tls.Certificate{PrivateKey: p.Key, Leaf: p.Chain[0]}
	for _, x := range p.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}
