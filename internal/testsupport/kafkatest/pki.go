package kafkatest

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"time"

	"github.com/intentguard/intentguard/internal/pki"
)

// lifetime of the test CA and of every certificate it issues: longer than any test.
const lifetime = 24 * time.Hour

// PKI is a throw-away certificate authority for brokers and clients that use mutual TLS.
type PKI struct {
	ca *pki.CA
	// CAPEM is the CA certificate, PEM encoded (what a Secret's ca.pem holds).
	CAPEM []byte
}

// NewPKI creates a CA valid for a day.
func NewPKI() (*PKI, error) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "kafkatest CA"}, lifetime, time.Now())
	if err != nil {
		return nil, err
	}
	return &PKI{ca: ca, CAPEM: pki.EncodeCerts(ca.Cert)}, nil
}

// ServerTLS returns a broker listener configuration, for name, localhost and 127.0.0.1,
// that requires client certificates signed by the CA; each verified client's subject is
// sent on seen, when not nil.
func (p *PKI) ServerTLS(name string, seen chan<- pkix.Name) (*tls.Config, error) {
	leaf, err := p.ca.Issue(pki.Request{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		Usage: pki.ServerAuth, TTL: lifetime,
	}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("issuing the broker certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}},
		ClientCAs:    pki.Pool(p.ca.Cert),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if seen != nil && len(cs.PeerCertificates) > 0 {
				select {
				case seen <- cs.PeerCertificates[0].Subject:
				default:
				}
			}
			return nil
		},
	}, nil
}

// ClientPEM issues a client certificate and returns it and its key, PEM encoded (what a
// Secret's cert.pem and key.pem hold).
func (p *PKI) ClientPEM(subject pkix.Name) (cert, key []byte, err error) {
	leaf, err := p.ca.Issue(pki.Request{Subject: subject, Usage: pki.ClientAuth, TTL: lifetime}, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a client certificate: %w", err)
	}
	key, err = pki.EncodeKey(leaf.Key)
	if err != nil {
		return nil, nil, err
	}
	return pki.EncodeCerts(leaf.Cert), key, nil
}
