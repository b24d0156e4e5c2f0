// Package backend is the small interface between the credentials operator and the
// certificate authorities it can use (the built-in CA, SPIRE): what a workload asks for
// and what it gets back. It has no Kubernetes or protobuf types on purpose.
package backend

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"time"
)

// Request is one workload's certificate request.
type Request struct {
	// SPIFFEID becomes the certificate's only URI SAN.
	SPIFFEID *url.URL
	// Subject is the certificate subject (principal.Subject of the workload identity).
	Subject pkix.Name
	// DNSNames are the DNS SANs; the first one equals Subject.CommonName, because SPIRE
	// sets the CN to the first DNS name whatever the request says.
	DNSNames []string
	// TTL is the requested lifetime; a backend may shorten it (never lengthen it).
	TTL time.Duration
}

// Credential is an issued certificate with its key and the trust bundle to verify peers.
type Credential struct {
	// Key is the private key of the leaf certificate; it never leaves the operator except
	// into the workload's Secret.
	Key crypto.Signer
	// Chain is the leaf certificate followed by any intermediates.
	Chain []*x509.Certificate
	// Roots are the trust anchors that verify Chain and the certificates of peers.
	Roots []*x509.Certificate
}

// Leaf returns the credential's leaf certificate.
func (c *Credential) Leaf() *x509.Certificate { return c.Chain[0] }

// Issuer issues workload certificates. Implementations are safe for concurrent use.
type Issuer interface {
	// Issue returns a new certificate for the request, signed with a fresh key.
	Issue(ctx context.Context, req Request) (*Credential, error)
	// BundleID changes whenever the trust bundle changes (a CA rotated), so that
	// Secrets issued under the old bundle are renewed.
	BundleID(ctx context.Context) (string, error)
}

// Workload is what a registry (SPIRE) learns about one workload identity.
type Workload struct {
	// SPIFFEID is the identity the entry grants.
	SPIFFEID *url.URL
	// Selectors are "type:value" pairs a workload attestor must produce, e.g.
	// "k8s:ns:shop" and "k8s:sa:checkout".
	Selectors []string
	// DNSNames are carried on the entry so that SVIDs fetched through an agent carry them.
	DNSNames []string
	// TTL is the X.509-SVID lifetime of the entry.
	TTL time.Duration
}

// Changes counts what a registry sync did.
type Changes struct {
	Created, Updated, Deleted int
}

// Registrar is implemented by backends that keep a registry of the workloads they serve
// (SPIRE entries). Sync makes the registry hold exactly the given workloads among the
// records this operator owns and never touches any other record.
type Registrar interface {
	Sync(ctx context.Context, workloads []Workload) (Changes, error)
}
