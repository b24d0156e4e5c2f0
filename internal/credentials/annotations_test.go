package credentials

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/identity"
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

// Renewal falls within [fraction - jitter, fraction] of the lifetime, and jitter spreads it.
func TestRenewAtWithinItsWindow(t *testing.T) {
	r := &SecretReconciler{Options: Options{RenewFraction: 2.0 / 3, Jitter: 0.1}}
	now := time.Unix(1_700_000_000, 0)
	life := 30 * 24 * time.Hour
	seen := map[time.Time]bool{}
	for i := 0; i < 200; i++ {
		at := r.renewAt(now, now.Add(life))
		lo := now.Add(time.Duration(float64(life) * (2.0/3 - 0.1)))
		hi := now.Add(time.Duration(float64(life) * 2.0 / 3))
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("renewal at %s, outside [%s, %s]", at, lo, hi)
		}
		seen[at] = true
	}
	if len(seen) < 150 {
		t.Errorf("only %d distinct renewal times in 200: no jitter", len(seen))
	}
}

func TestRenderParseRoundTrip(t *testing.T) {
	key, err := backend.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := backend.NewKey()
	root := selfSignedCA(t, caKey)
	leaf := signedLeaf(t, root, caKey, key)
	cred := &backend.Credential{Key: key, Chain: []*x509Certificate{leaf}, Roots: []*x509Certificate{root}}
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
