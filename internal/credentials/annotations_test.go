package credentials

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		name    string
		ann     map[string]string
		want    func(Spec) bool
		wantErr string
	}{
		{"defaults", map[string]string{Prefix + AnnSecretName: "s"}, func(s Spec) bool {
			return s.Format == FormatPEM && s.CertFile == "cert.pem" && s.KeyFile == "key.pem" && s.CAFile == "ca.pem" && s.TTL == 0 && !s.Restart
		}, ""},
		{"legacy twin", map[string]string{LegacyPrefix + AnnSecretName: "old", LegacyPrefix + AnnCertType: "JKS"}, func(s Spec) bool {
			return s.SecretName == "old" && s.Format == FormatJKS && s.KeystoreFile == "keystore.jks" && s.PasswordSecretName() == "old-password"
		}, ""},
		{"current prefix wins", map[string]string{Prefix + AnnSecretName: "new", LegacyPrefix + AnnSecretName: "old"}, func(s Spec) bool { return s.SecretName == "new" }, ""},
		{"pkcs12 defaults", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCertType: "pkcs12"}, func(s Spec) bool {
			return s.KeystoreFile == "keystore.p12" && s.TruststoreFile == "truststore.p12"
		}, ""},
		{"dns names trimmed", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnDNSNames: " a.example.com, *.b.example.com ,"}, func(s Spec) bool {
			return slices.Equal(s.DNSNames, []string{"a.example.com", "*.b.example.com"})
		}, ""},
		{"ttl", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnTTL: "3600", Prefix + AnnRestart: "true"}, func(s Spec) bool {
			return s.TTL == time.Hour && s.Restart
		}, ""},
		{"bad secret name", map[string]string{Prefix + AnnSecretName: "Not_Valid"}, nil, "not a valid Secret name"},
		{"bad dns name", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnDNSNames: "ok.example.com,bad name"}, nil, "is not a DNS name"},
		{"wildcard covering a name", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnDNSNames: "*.example.com,api.example.com"}, nil, "covered by the wildcard"},
		{"bad ttl", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnTTL: "-5"}, nil, "positive number of seconds"},
		{"bad type", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCertType: "der"}, nil, "not one of pem, pkcs12, jks"},
		{"plain-text password refused", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnJKSPassword: "hunter2"}, nil, "plain text"},
		{"same file twice", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCertFile: "x.pem", Prefix + AnnKeyFile: "x.pem"}, nil, "used for both"},
		{"bad file name", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCAFile: "../ca.pem"}, nil, "not a valid Secret key"},
		{"bad restart", map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnRestart: "sometimes"}, nil, "true or false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSpec(c.ann)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(s) {
				t.Errorf("spec = %+v", s)
			}
		})
	}
}

func TestSPIFFEID(t *testing.T) {
	id := identity.Identity{Namespace: "shop", Name: "checkout", Kind: "Deployment"}
	u, err := SPIFFEID(DefaultSPIFFEIDFormat, "example.org", id)
	if err != nil || u.String() != "spiffe://example.org/otterize/namespace/shop/service/checkout" {
		t.Errorf("default format: %v, %v", u, err)
	}
	u, err = SPIFFEID("spiffe://{trustDomain}/ns/{namespace}/{kind}/{name}", "td", id)
	if err != nil || u.String() != "spiffe://td/ns/shop/deployment/checkout" {
		t.Errorf("custom format: %v, %v", u, err)
	}
	for _, bad := range []string{"https://{trustDomain}/x/{name}", "spiffe://{trustDomain}", "spiffe://{trustDomain}/a//{name}", "spiffe://{trustDomain}/{name}?q=1"} {
		if _, err := SPIFFEID(bad, "td", id); err == nil {
			t.Errorf("format %q accepted", bad)
		}
	}
}

// A Secret is renewed by the renewal rule (within [fraction - jitter, fraction] of its
// certificate's validity, spread by the jitter), but never sooner than a second after
// it was issued, even when the certificate's life is all but over.
func TestRenewAtFollowsTheRuleNoSoonerThanASecond(t *testing.T) {
	r := &SecretReconciler{Options: Options{Renewal: pki.Renewal{Fraction: 2.0 / 3, Jitter: 0.1}}}
	now := time.Unix(1_700_000_000, 0)
	life := 30 * 24 * time.Hour
	leaf := &x509.Certificate{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(life)}
	valid := leaf.NotAfter.Sub(leaf.NotBefore)
	lo := leaf.NotBefore.Add(time.Duration(float64(valid) * (2.0/3 - 0.1)))
	hi := leaf.NotBefore.Add(time.Duration(float64(valid) * 2.0 / 3))
	seen := map[time.Time]bool{}
	for i := 0; i < 200; i++ {
		at := r.renewAt(now, leaf)
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("renewal at %s, outside [%s, %s]", at, lo, hi)
		}
		seen[at] = true
	}
	if len(seen) < 150 {
		t.Errorf("only %d distinct renewal times in 200: no jitter", len(seen))
	}
	ending := &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(500 * time.Millisecond)}
	if at := r.renewAt(now, ending); !at.Equal(now.Add(time.Second)) {
		t.Errorf("a certificate ending in half a second is renewed at %s, want a second from now (%s)", at, now.Add(time.Second))
	}
}

func TestRenderParseRoundTrip(t *testing.T) {
	cred := testCredential(t)
	leaf, root := cred.Leaf(), cred.Roots[0]
	for _, format := range []string{FormatPEM, FormatPKCS12, FormatJKS} {
		spec, err := ParseSpec(map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCertType: format})
		if err != nil {
			t.Fatal(err)
		}
		data, err := Render(spec, cred, []byte("secret-pass"))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		p, err := Parse(spec, data, []byte("secret-pass"))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !p.Chain[0].Equal(leaf) || len(p.Roots) != 1 || !p.Roots[0].Equal(root) {
			t.Errorf("%s: round trip changed the certificates", format)
		}
		if spec.NeedsPassword() {
			if _, err := Parse(spec, data, []byte("other-pass")); err == nil {
				t.Errorf("%s: opens with a wrong password", format)
			}
		}
	}
}
