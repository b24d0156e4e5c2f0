package credentials

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
)

// testCredential returns a credential for checkout.shop issued by a fresh test CA, as
// the built-in CA would issue it.
func testCredential(t *testing.T) *backend.Credential {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "test CA"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.Request{
		Subject:  principal.Subject(identity.Identity{Namespace: "shop", Name: "checkout", Kind: "Deployment"}, principal.Organization),
		DNSNames: []string{"checkout.shop"},
		Usage:    pki.ServerAuth | pki.ClientAuth,
		TTL:      time.Hour,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &backend.Credential{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert}, Roots: []*x509.Certificate{ca.Cert}}
}
