package pki

import (
	"crypto/ecdsa"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func newTestCA(t *testing.T, cn string, lifetime time.Duration, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(pkix.Name{CommonName: cn, Organization: []string{"intentguard"}}, lifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Certificate times are whole seconds: what a certificate says is the asked time, cut
// to the second below.
func cut(t time.Time) time.Time { return t.Truncate(time.Second) }

// An issued leaf verifies against its CA for what it was issued for and nothing else,
// and carries the names and the lifetime asked for.
func TestIssuedLeafHasWhatWasAsked(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://intentguard.local/otterize/namespace/shop/service/checkout")
	cases := []struct {
		name string
		req  Request
	}{
		{"server with DNS names and an IP", Request{
			Subject: pkix.Name{CommonName: "hook.system.svc"}, DNSNames: []string{"hook.system.svc", "localhost"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Usage: ServerAuth, TTL: 365 * 24 * time.Hour,
		}},
		{"client with a subject only", Request{
			Subject: pkix.Name{CommonName: "operator", Organization: []string{"intentguard"}}, Usage: ClientAuth, TTL: 24 * time.Hour,
		}},
		{"workload: both uses, DNS names and a SPIFFE ID", Request{
			Subject:  pkix.Name{CommonName: "checkout.shop", Organization: []string{"intentguard"}},
			DNSNames: []string{"checkout.shop", "checkout.shop.svc.cluster.local"}, URIs: []*url.URL{spiffe},
			Usage: ServerAuth | ClientAuth, TTL: 6 * time.Second,
		}},
		{"an IPv6 server for two seconds", Request{
			Subject: pkix.Name{CommonName: "::1"}, IPAddresses: []net.IP{net.ParseIP("::1")}, Usage: ServerAuth, TTL: 2 * time.Second,
		}},
	}
	now := time.Now()
	ca := newTestCA(t, "test CA", 10*365*24*time.Hour, now.Add(-time.Hour))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leaf, err := ca.Issue(c.req, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify([]*x509.Certificate{leaf.Cert}, []*x509.Certificate{ca.Cert}, c.req.Usage); err != nil {
				t.Errorf("does not verify against its CA: %v", err)
			}
			for _, u := range []Usage{ServerAuth, ClientAuth} {
				err := Verify([]*x509.Certificate{leaf.Cert}, []*x509.Certificate{ca.Cert}, u)
				if asked := c.req.Usage&u != 0; asked != (err == nil) {
					t.Errorf("usage %d: asked %v, verifies: %v (%v)", u, asked, err == nil, err)
				}
			}
			got := leaf.Cert
			if got.Subject.String() != c.req.Subject.String() {
				t.Errorf("subject %s, want %s", got.Subject, c.req.Subject)
			}
			if !slices.Equal(got.DNSNames, c.req.DNSNames) {
				t.Errorf("DNS names %v, want %v", got.DNSNames, c.req.DNSNames)
			}
			if !slices.EqualFunc(got.IPAddresses, c.req.IPAddresses, net.IP.Equal) {
				t.Errorf("IP addresses %v, want %v", got.IPAddresses, c.req.IPAddresses)
			}
			if !slices.EqualFunc(got.URIs, c.req.URIs, func(a, b *url.URL) bool { return a.String() == b.String() }) {
				t.Errorf("URIs %v, want %v", got.URIs, c.req.URIs)
			}
			for _, h := range append(slices.Clone(c.req.DNSNames), ipStrings(c.req.IPAddresses)...) {
				if err := got.VerifyHostname(h); err != nil {
					t.Errorf("not valid for %s: %v", h, err)
				}
			}
			if want := cut(now.Add(c.req.TTL)); !got.NotAfter.Equal(want) {
				t.Errorf("NotAfter %s, want %s (TTL %s)", got.NotAfter, want, c.req.TTL)
			}
			if want := cut(now.Add(-Backdate(c.req.TTL))); !got.NotBefore.Equal(want) {
				t.Errorf("NotBefore %s, want %s", got.NotBefore, want)
			}
			if got.IsCA || !got.BasicConstraintsValid {
				t.Errorf("a leaf must say it is no CA")
			}
			if !leaf.Key.PublicKey.Equal(got.PublicKey) {
				t.Errorf("the returned key is not the certificate's")
			}
		})
	}
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// A leaf of another CA is refused, even when that CA has the same name; a bundle holding
// both CAs (as during a rotation) accepts both leaves.
func TestLeafOfAnotherCAIsRefused(t *testing.T) {
	now := time.Now()
	mine := newTestCA(t, "intentguard workload CA", time.Hour, now)
	other := newTestCA(t, "intentguard workload CA", time.Hour, now)
	req := Request{Subject: pkix.Name{CommonName: "client.shop"}, DNSNames: []string{"client.shop"}, Usage: ServerAuth | ClientAuth, TTL: time.Minute}
	ours, err := mine.Issue(req, now)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := other.Issue(req, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []Usage{0, ServerAuth, ClientAuth, ServerAuth | ClientAuth} {
		if err := Verify([]*x509.Certificate{theirs.Cert}, []*x509.Certificate{mine.Cert}, u); err == nil {
			t.Errorf("usage %d: a leaf of another CA verifies", u)
		}
		for _, leaf := range []*Leaf{ours, theirs} {
			if err := Verify([]*x509.Certificate{leaf.Cert}, []*x509.Certificate{mine.Cert, other.Cert}, u); err != nil {
				t.Errorf("usage %d: the bundle of both CAs refuses a leaf: %v", u, err)
			}
		}
	}
	if err := Verify([]*x509.Certificate{ours.Cert}, nil, ServerAuth); err == nil {
		t.Error("a leaf verifies against no CA at all")
	}
	if err := Verify(nil, []*x509.Certificate{mine.Cert}, ServerAuth); err == nil {
		t.Error("an empty chain verifies")
	}
}

// A CA signs leaves only: a certificate it signs cannot sign another one that verifies.
func TestCASignsLeavesOnly(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "root", time.Hour, now)
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate: IsCA %v, MaxPathLenZero %v, KeyUsage %b", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if ca.Cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Error("the CA is not self-signed")
	}
	leaf, err := ca.Issue(Request{Subject: pkix.Name{CommonName: "a"}, Usage: ClientAuth, TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	sub := &CA{Cert: leaf.Cert, Key: leaf.Key}
	grandchild, err := sub.Issue(Request{Subject: pkix.Name{CommonName: "b"}, Usage: ClientAuth, TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify([]*x509.Certificate{grandchild.Cert, leaf.Cert}, []*x509.Certificate{ca.Cert}, ClientAuth); err == nil {
		t.Error("a leaf's leaf verifies through it")
	}
}

// A leaf never outlives its CA, and an expired CA issues nothing.
func TestLeafNeverOutlivesItsCA(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "short", time.Hour, now)
	leaf, err := ca.Issue(Request{Subject: pkix.Name{CommonName: "x"}, Usage: ServerAuth, TTL: 48 * time.Hour}, now.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf ends %s, after its CA (%s)", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
	// Its start is backdated by a tenth of what is left of the CA, not of the TTL asked.
	if want := cut(now.Add(30*time.Minute - Backdate(30*time.Minute))); !leaf.Cert.NotBefore.Equal(want) {
		t.Errorf("leaf starts %s, want %s", leaf.Cert.NotBefore, want)
	}
	if _, err := ca.Issue(Request{Subject: pkix.Name{CommonName: "x"}, Usage: ServerAuth, TTL: time.Minute}, now.Add(2*time.Hour)); err == nil {
		t.Error("an expired CA issued a certificate")
	}
	for _, bad := range []Request{
		{Subject: pkix.Name{CommonName: "no ttl"}, Usage: ServerAuth},
		{Subject: pkix.Name{CommonName: "no usage"}, TTL: time.Minute},
	} {
		if _, err := ca.Issue(bad, now); err == nil {
			t.Errorf("%s: issued", bad.Subject.CommonName)
		}
	}
	if _, err := NewCA(pkix.Name{CommonName: "none"}, 0, now); err == nil {
		t.Error("a CA without a lifetime was made")
	}
}

// Backdating is a tenth of the lifetime, at most a minute.
func TestBackdate(t *testing.T) {
	for _, c := range []struct{ life, want time.Duration }{
		{2 * time.Second, 200 * time.Millisecond},
		{10 * time.Minute, time.Minute},
		{9 * time.Minute, 54 * time.Second},
		{365 * 24 * time.Hour, time.Minute},
	} {
		if got := Backdate(c.life); got != c.want {
			t.Errorf("Backdate(%s) = %s, want %s", c.life, got, c.want)
		}
	}
}

// Property: for any lifetime from two seconds to ten years, a certificate issued now is
// due at two thirds neither before it is issued nor after it expires, whatever second
// it is issued in.
func TestIssuedCertificateIsDueBetweenIssueAndExpiry(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	now := time.Now()
	ca := newTestCA(t, "long", 20*365*24*time.Hour, now)
	rule := Renewal{Fraction: 2.0 / 3}
	for range 200 {
		ttl := 2*time.Second + time.Duration(rng.Int64N(int64(10*365*24*time.Hour)))
		if rng.IntN(2) == 0 {
			ttl = 2*time.Second + time.Duration(rng.Int64N(int64(time.Minute)))
		}
		at := now.Add(time.Duration(rng.Int64N(int64(time.Second))))
		leaf, err := ca.Issue(Request{Subject: pkix.Name{CommonName: "p"}, Usage: ClientAuth, TTL: ttl}, at)
		if err != nil {
			t.Fatal(err)
		}
		due := rule.At(leaf.Cert)
		if !due.After(at) || !due.Before(leaf.Cert.NotAfter) {
			t.Fatalf("TTL %s issued at %s: due at %s, want after issue and before %s", ttl, at, due, leaf.Cert.NotAfter)
		}
	}
}

func TestPEMRoundTrip(t *testing.T) {
	now := time.Now()
	a, b := newTestCA(t, "a", time.Hour, now), newTestCA(t, "b", time.Hour, now)
	bundle := EncodeCerts(a.Cert, b.Cert)
	keyPEM, err := EncodeKey(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key not written as PKCS#8: %.40s", keyPEM)
	}
	// A key block among the certificates is skipped, as in a combined PEM file.
	certs, err := ParseCerts(append(append(slices.Clone(keyPEM), bundle...), keyPEM...))
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(a.Cert) || !certs[1].Equal(b.Cert) {
		t.Fatalf("bundle read back as %d certificates, or out of order", len(certs))
	}
	if first, err := ParseCert(bundle); err != nil || !first.Equal(a.Cert) {
		t.Errorf("ParseCert: %v, want the first certificate", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Key.(*ecdsa.PrivateKey).Equal(key) {
		t.Error("key changed in the round trip")
	}
	if EncodeCerts() != nil {
		t.Error("no certificates encode to something")
	}
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("not PEM"),
		"key only":   keyPEM,
		"bad DER":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
		"truncated":  bundle[:len(bundle)/4],
		"wrong type": pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: a.Cert.Raw}),
	} {
		if _, err := ParseCerts(bad); err == nil {
			t.Errorf("ParseCerts(%s) succeeded", name)
		}
	}
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"certificate": bundle,
		"bad DER":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%s) succeeded", name)
		}
	}
}

// Keys written by earlier releases (SEC 1 in webhook Secrets) and PKCS#1 RSA keys a user
// may put in a CA Secret are read too.
func TestParseKeyReadsOlderForms(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil || !k.Equal(got) {
		t.Errorf("SEC 1 key: %v", err)
	}
	rk, err := rsa.GenerateKey(cryptorand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	got, err = ParseKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	if err != nil || !rk.Equal(got) {
		t.Errorf("PKCS#1 key: %v", err)
	}
}

func TestFingerprintChangesWithTheBundle(t *testing.T) {
	now := time.Now()
	a, b := newTestCA(t, "a", time.Hour, now), newTestCA(t, "b", time.Hour, now)
	seen := map[string]string{}
	for name, bundle := range map[string][]*x509.Certificate{
		"none": nil, "a": {a.Cert}, "b": {b.Cert}, "a b": {a.Cert, b.Cert}, "b a": {b.Cert, a.Cert},
	} {
		fp := Fingerprint(bundle)
		if prev, ok := seen[fp]; ok {
			t.Errorf("bundles %q and %q share the fingerprint %s", prev, name, fp)
		}
		seen[fp] = name
		if Fingerprint(bundle) != fp {
			t.Errorf("bundle %q: fingerprint not stable", name)
		}
	}
}

func TestSplitHosts(t *testing.T) {
	dns, ips := SplitHosts([]string{"hook.ns.svc", "127.0.0.1", "localhost", "::1"})
	if !slices.Equal(dns, []string{"hook.ns.svc", "localhost"}) || len(ips) != 2 || !ips[0].Equal(net.ParseIP("127.0.0.1")) || !ips[1].Equal(net.ParseIP("::1")) {
		t.Errorf("SplitHosts: DNS %v, IPs %v", dns, ips)
	}
}
