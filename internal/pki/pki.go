// Package pki holds the certificate authorities of intentguard: the admission webhook's
// serving CA, the credentials operator's built-in workload CA and the throw-away CAs of
// the tests all make keys, CAs and leaf certificates here, encode them here, and renew
// them by the one rule of this package.
//
// Keys are P-256 ECDSA keys (accepted by Java keystores, Kafka and SPIRE alike), written
// as PKCS#8; SEC 1 and PKCS#1 keys are read too, as older webhook Secrets hold them.
// Every certificate starts a little before it is made, for clocks that lag ours: by a
// tenth of its lifetime, at most a minute, so that its renewal point stays where the
// rule puts it. A leaf never outlives the CA that signs it.
//
// The renewal rule (Renewal): a certificate is renewed once Fraction of its validity
// period, from NotBefore to NotAfter as the certificate states them, has passed, less a
// random part of at most Jitter of that period. The webhook renews its serving
// certificate and its CA at two thirds, without jitter; the credentials operator renews
// workload certificates at --renew-fraction (default two thirds) less --renew-jitter
// (default 5%), and rotates its CA at --renew-fraction, publishing the next CA at half
// of it. Because the rule reads only the certificate, every replica and every restart
// reaches the same decision.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// NewKey returns a fresh P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a P-256 key: %w", err)
	}
	return k, nil
}

// Backdate is how far before its issue a certificate of the given lifetime starts.
func Backdate(lifetime time.Duration) time.Duration {
	return min(time.Minute, lifetime/10)
}

// CA is a certificate authority: its certificate and the key that signs with it.
type CA struct {
	// Cert is the CA's self-signed certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
}

// NewCA makes a self-signed CA for subject with a fresh key, valid for lifetime from now.
// It signs leaves only, never other CAs.
func NewCA(subject pkix.Name, lifetime time.Duration, now time.Time) (*CA, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("creating CA %q: lifetime %s is not positive", subject.CommonName, lifetime)
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("creating CA %q: %w", subject.CommonName, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-Backdate(lifetime)),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA %q: %w", subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA %q just signed: %w", subject.CommonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Usage says what a leaf certificate authenticates.
type Usage int

// Usages of a leaf; combine them with |.
const (
	// ServerAuth: the leaf serves TLS.
	ServerAuth Usage = 1 << iota
	// ClientAuth: the leaf authenticates a TLS client.
	ClientAuth
)

func (u Usage) extKeyUsages() []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	if u&ServerAuth != 0 {
		out = append(out, x509.ExtKeyUsageServerAuth)
	}
	if u&ClientAuth != 0 {
		out = append(out, x509.ExtKeyUsageClientAuth)
	}
	return out
}

// Request is what a leaf certificate is issued for.
type Request struct {
	// Subject is the certificate's subject.
	Subject pkix.Name
	// DNSNames, IPAddresses and URIs are its subject alternative names.
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []*url.URL
	// Usage is ServerAuth, ClientAuth or both.
	Usage Usage
	// TTL is the lifetime asked for; the CA's own expiry shortens it.
	TTL time.Duration
}

// Leaf is an issued certificate with its private key.
type Leaf struct {
	// Cert is the leaf certificate.
	Cert *x509.Certificate
	// Key is its fresh private key.
	Key *ecdsa.PrivateKey
}

// Issue signs a certificate for req with a fresh key, valid from now (backdated) for
// req.TTL or until the CA expires, whichever comes first.
func (ca *CA) Issue(req Request, now time.Time) (*Leaf, error) {
	if req.TTL <= 0 {
		return nil, fmt.Errorf("issuing a certificate for %q: TTL %s is not positive", req.Subject.CommonName, req.TTL)
	}
	if req.Usage == 0 {
		return nil, fmt.Errorf("issuing a certificate for %q: no usage", req.Subject.CommonName)
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issuing a certificate for %q: the CA expired at %s", req.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %q: %w", req.Subject.CommonName, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(req.TTL)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		URIs:                  req.URIs,
		NotBefore:             now.Add(-Backdate(notAfter.Sub(now))),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Usage.extKeyUsages(),
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %q: %w", req.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate just signed for %q: %w", req.Subject.CommonName, err)
	}
	return &Leaf{Cert: cert, Key: key}, nil
}

// SplitHosts sorts host names into the DNS names and the IP addresses among them.
func SplitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// Verify checks that chain (a leaf, then any intermediates) leads to one of roots and
// that the leaf may be used as usage says (any use when usage is 0), at the current time.
func Verify(chain, roots []*x509.Certificate, usage Usage) error {
	if len(chain) == 0 {
		return errors.New("no certificate to verify")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	ekus := usage.extKeyUsages()
	if len(ekus) == 0 {
		ekus = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	for _, eku := range ekus {
		// x509 accepts a chain when any one of the asked usages is allowed; each is needed.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: Pool(roots...), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			return fmt.Errorf("verifying %q: %w", leaf.Subject.CommonName, err)
		}
	}
	return nil
}

// Pool returns a certificate pool holding certs.
func Pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("drawing a serial number: %w", err)
	}
	return n, nil
}
