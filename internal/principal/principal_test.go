package principal

import (
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
	ca := testCA(t)
	for _, c := range cases {
		cert := issuedSubject(t, ca, Subject(c.id, c.org))
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
