package webhook

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/intentguard/intentguard/internal/pki"
)

func rotatorAt(now *time.Time) *CertRotator {
	r := NewCertRotator(nil, CertConfig{Hosts: []string{"hook.system.svc", "10.0.0.1"}, Validity: 3 * time.Hour}, logr.Discard())
	r.now = func() time.Time { return *now }
	return r
}

// The serving certificate is renewed at two thirds of its life, its CA at two thirds of
// its own (ten times as long); a new CA is served alongside the previous one, which the
// bundle keeps while it is valid.
func TestServingCertificateRenewal(t *testing.T) {
	start := time.Now()
	now := start
	r := rotatorAt(&now)
	data, err := r.issue(nil)
	if err != nil {
		t.Fatal(err)
	}
	if reason := r.renewalReason(data); reason != "" {
		t.Fatalf("a fresh certificate is due: %s", reason)
	}
	leaf, err := pki.ParseCert(data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCert(data[SecretCAKey])
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Verify([]*x509.Certificate{leaf}, []*x509.Certificate{ca}, pki.ServerAuth); err != nil {
		t.Fatalf("the serving certificate does not verify against the bundle: %v", err)
	}
	for _, h := range []string{"hook.system.svc", "10.0.0.1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("not valid for %s: %v", h, err)
		}
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 30*time.Hour || life > 30*time.Hour+time.Minute+time.Second {
		t.Errorf("CA lives %s, want ten times 3h", life)
	}

	renewAt := pki.Renewal{Fraction: 2.0 / 3}.At(leaf)
	now = renewAt.Add(-time.Second)
	if reason := r.renewalReason(data); reason != "" {
		t.Errorf("due a second before two thirds of its life: %s", reason)
	}
	now = renewAt
	if reason := r.renewalReason(data); !strings.HasPrefix(reason, "expires at") {
		t.Errorf("at two thirds of its life: reason %q, want it to expire", reason)
	}
	// Renewed before the CA is due: the same CA signs, and the bundle holds it alone.
	renewed, err := r.issue(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(renewed[SecretCAKey]) != string(data[SecretCAKey]) || string(renewed[SecretCAKeyKey]) != string(data[SecretCAKeyKey]) {
		t.Error("the CA changed while it had most of its life left")
	}

	// Once the CA is due, a new CA signs and the bundle keeps the old one after it.
	now = pki.Renewal{Fraction: 2.0 / 3}.At(ca)
	if reason := r.renewalReason(renewed); reason == "" {
		t.Fatal("nothing due at two thirds of the CA's life")
	}
	rotated, err := r.issue(renewed)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.ParseCerts(rotated[SecretCAKey])
	if err != nil {
		t.Fatal(err)
	}
	if len(bundle) != 2 || bundle[0].Equal(ca) || !bundle[1].Equal(ca) {
		t.Fatalf("bundle after the CA rotation: %d CAs, want the new one then the old one", len(bundle))
	}
	if reason := r.renewalReason(rotated); reason != "" {
		t.Errorf("just rotated, yet due: %s", reason)
	}
	if !trustsAll(rotated[SecretCAKey], renewed[SecretCAKey]) || trustsAll(renewed[SecretCAKey], rotated[SecretCAKey]) {
		t.Error("the rotated bundle must trust the old CA, and the old bundle not the new one")
	}
}

// A Secret written by an earlier release, with SEC 1 ("EC PRIVATE KEY") keys, is read
// and kept as it is; one with a key that does not match or a CA that did not sign is
// renewed.
func TestSecretsOfEarlierReleasesAreKept(t *testing.T) {
	now := time.Now()
	r := rotatorAt(&now)
	data, err := r.issue(nil)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := func(keyPEM []byte) []byte {
		k, err := pki.ParseKey(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	old := map[string][]byte{
		corev1.TLSCertKey:       data[corev1.TLSCertKey],
		corev1.TLSPrivateKeyKey: sec1(data[corev1.TLSPrivateKeyKey]),
		SecretCAKey:             data[SecretCAKey],
		SecretCAKeyKey:          sec1(data[SecretCAKeyKey]),
	}
	if reason := r.renewalReason(old); reason != "" {
		t.Errorf("a Secret with SEC 1 keys is due: %s", reason)
	}
	other, err := r.issue(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]map[string][]byte{
		"another key":      {corev1.TLSCertKey: data[corev1.TLSCertKey], corev1.TLSPrivateKeyKey: other[corev1.TLSPrivateKeyKey], SecretCAKey: data[SecretCAKey], SecretCAKeyKey: data[SecretCAKeyKey]},
		"another CA":       {corev1.TLSCertKey: data[corev1.TLSCertKey], corev1.TLSPrivateKeyKey: data[corev1.TLSPrivateKeyKey], SecretCAKey: other[SecretCAKey], SecretCAKeyKey: other[SecretCAKeyKey]},
		"no CA key":        {corev1.TLSCertKey: data[corev1.TLSCertKey], corev1.TLSPrivateKeyKey: data[corev1.TLSPrivateKeyKey], SecretCAKey: data[SecretCAKey]},
		"nothing":          {},
		"another host set": nil,
	} {
		rr := r
		if name == "another host set" {
			rr = NewCertRotator(nil, CertConfig{Hosts: []string{"other.system.svc"}, Validity: 3 * time.Hour}, logr.Discard())
			bad = data
		}
		if reason := rr.renewalReason(bad); reason == "" {
			t.Errorf("%s: not due", name)
		}
	}
}
