package ca

import (
	"context"
	"crypto/x509/pkix"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/pki"
)

// A workload certificate serves and authenticates clients, carries the SPIFFE ID and DNS
// names asked for, verifies against the trust bundle and never outlives the CA.
func TestIssueForAWorkload(t *testing.T) {
	now := time.Now()
	current, err := pki.NewCA(pkix.Name{CommonName: "current"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cfg: Config{Lifetime: time.Hour, RotateAfter: 2.0 / 3}, cert: current.Cert, key: current.Key}
	id, _ := url.Parse("spiffe://intentguard.local/otterize/namespace/shop/service/checkout")
	cred, err := ca.Issue(context.Background(), backend.Request{
		SPIFFEID: id, Subject: pkix.Name{CommonName: "checkout.shop", Organization: []string{"intentguard"}},
		DNSNames: []string{"checkout.shop"}, TTL: 2 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cred.Leaf()
	if err := pki.Verify(cred.Chain, cred.Roots, pki.ServerAuth|pki.ClientAuth); err != nil {
		t.Errorf("does not verify for server and client use: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() || !slices.Equal(leaf.DNSNames, []string{"checkout.shop"}) {
		t.Errorf("names: URIs %v, DNS %v", leaf.URIs, leaf.DNSNames)
	}
	if leaf.NotAfter.After(current.Cert.NotAfter) {
		t.Errorf("a 2h certificate from a 1h CA ends %s, after the CA (%s)", leaf.NotAfter, current.Cert.NotAfter)
	}
	if len(cred.Roots) != 1 || !cred.Roots[0].Equal(current.Cert) {
		t.Errorf("bundle holds %d CAs, want the current one", len(cred.Roots))
	}
}

// The next CA is published at half the rotation point and signs from the rotation point,
// both by the renewal rule over the current CA's validity period.
func TestRotationTimesFollowTheRenewalRule(t *testing.T) {
	now := time.Now()
	current, err := pki.NewCA(pkix.Name{CommonName: "current"}, 9*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cfg: Config{Lifetime: 9 * time.Second, RotateAfter: 2.0 / 3}, cert: current.Cert, key: current.Key}
	publish, rotate := ca.RotationDue()
	life := current.Cert.NotAfter.Sub(current.Cert.NotBefore)
	if want := current.Cert.NotBefore.Add(life / 3); publish.Sub(want).Abs() > time.Microsecond {
		t.Errorf("published at %s, want %s (a third of %s)", publish, want, life)
	}
	if want := current.Cert.NotBefore.Add(2 * life / 3); rotate.Sub(want).Abs() > time.Microsecond {
		t.Errorf("rotated at %s, want %s (two thirds of %s)", rotate, want, life)
	}
	// A CA Secret made by the user is never rotated, even when due.
	ca.external = true
	if changed, err := ca.Step(context.Background(), rotate.Add(time.Hour)); changed || err != nil {
		t.Errorf("the user's CA was stepped: changed %v, %v", changed, err)
	}
}
