package principal

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/intentguard/intentguard/internal/identity"
)

// The DN a broker derives is read from the encoded certificate, so the test goes through
// a real certificate rather than the pkix.Name it was built from.
func TestDNOfIssuedCertificate(t *testing.T) {
	cases := []struct {
		id   identity.Identity
		org  string
		want string
	}{
		{identity.Identity{Namespace: "ns", Name: "client"}, Organization, "User:CN=client.ns,O=intentguard"},
		{identity.Identity{Namespace: "kafka", Name: "orders-worker", Kind: "Deployment"}, "", "User:CN=orders-worker.kafka"},
		{identity.Identity{Namespace: "a", Name: "b"}, "acme, inc", `User:CN=b.a,O=acme\, inc`},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: Subject(c.id, c.org)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		got, err := KafkaUser(cert.Subject)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%v: got %q, want %q", c.id, got, c.want)
		}
		if direct, _ := KafkaUser(Subject(c.id, c.org)); direct != got {
			t.Errorf("%v: subject renders %q before encoding, %q after", c.id, direct, got)
		}
	}
}

func TestDNRefusesOIDAttributes(t *testing.T) {
	n := Subject(identity.Identity{Namespace: "ns", Name: "x"}, "")
	n.SerialNumber = "42"
	if _, err := DN(n); err == nil {
		t.Fatal("a serial number in the subject must be refused")
	}
}
