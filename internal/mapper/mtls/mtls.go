// Package mtls is the mutual TLS between the mapper's agents and its aggregator, from
// the files the credentials operator keeps in each one's Secret (cert.pem, key.pem,
// ca.pem), read again when they change, so that renewed certificates and a new CA are
// used without a restart.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// File names in a credentials directory, as the credentials operator writes them.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
	CAFile   = "ca.pem"
)

// Credentials are a certificate, its key and the CA certificates trusted for peers, in a
// directory (a mounted Secret).
type Credentials struct {
	dir string

	mu    sync.Mutex
	stamp [3]time.Time
	cert  *tls.Certificate
	roots *x509.CertPool
}

// Load reads the credentials in dir.
func Load(dir string) (*Credentials, error) {
	c := &Credentials{dir: dir}
	if _, _, err := c.current(); err != nil {
		return nil, err
	}
	return c, nil
}

// current returns the certificate and trusted CAs, read again if a file changed since
// the last read. A Secret volume swaps all its files at once, so a change is seen whole.
func (c *Credentials) current() (*tls.Certificate, *x509.CertPool, error) {
	var stamp [3]time.Time
	for i, name := range []string{CertFile, KeyFile, CAFile} {
		fi, err := os.Stat(filepath.Join(c.dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("reading the mapper's TLS credentials: %w", err)
		}
		stamp[i] = fi.ModTime()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && stamp == c.stamp {
		return c.cert, c.roots, nil
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.dir, CertFile), filepath.Join(c.dir, KeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("loading the mapper's TLS certificate from %s: %w", c.dir, err)
	}
	ca, err := os.ReadFile(filepath.Join(c.dir, CAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the mapper's TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, nil, fmt.Errorf("no CA certificate in %s", filepath.Join(c.dir, CAFile))
	}
	c.cert, c.roots, c.stamp = &cert, roots, stamp
	return c.cert, c.roots, nil
}

// ServerConfig is the aggregator's TLS configuration: it presents its certificate and
// accepts only clients whose certificate a trusted CA signed for client use and whose
// common name is one of clients (the agents' workload identities, name.namespace).
func ServerConfig(c *Credentials, clients []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, roots, err := c.current()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    roots,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if cn := cs.PeerCertificates[0].Subject.CommonName; !slices.Contains(clients, cn) {
						return fmt.Errorf("client %q is not a mapper agent", cn)
					}
					return nil
				},
			}, nil
		},
	}
}

// ClientConfig is an agent's TLS configuration: it presents its certificate and accepts
// a server whose certificate a trusted CA signed for server, the name (or address) the
// agent dials. The server is verified here rather than by crypto/tls so that the CAs are
// those of the moment, not those when the configuration was made.
func ClientConfig(c *Credentials, server string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, err := c.current()
			return cert, err
		},
		// VerifyConnection below verifies the chain and the name with the current CAs.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, roots, err := c.current()
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the aggregator presented no certificate")
			}
			intermediates := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				intermediates.AddCert(ic)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: intermediates, DNSName: server,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("verifying the aggregator's certificate for %s: %w", server, err)
			}
			return nil
		},
	}
}
