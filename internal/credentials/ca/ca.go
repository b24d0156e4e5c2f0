// Package ca is the credentials operator's built-in certificate authority: a self-signed
// CA whose key pair lives in a Secret in the operator's namespace, created on first start
// and rotated before it expires. The previous CA stays in the trust bundle until it
// expires, so certificates issued before a rotation keep verifying while they are renewed.
package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials/backend"
)

// Keys of the CA Secret.
const (
	CertKey     = "ca.crt"
	KeyKey      = "ca.key"
	PreviousKey = "previous.crt"
)

// Config configures the built-in CA.
type Config struct {
	// Namespace and SecretName locate the CA Secret.
	Namespace, SecretName string
	// Organization is the O= of the CA's own subject.
	Organization string
	// Lifetime of a CA certificate.
	Lifetime time.Duration
	// RotateAfter is the fraction of Lifetime after which a new CA replaces the current one.
	RotateAfter float64
	// Labels mark the Secret as this operator's.
	Labels map[string]string
	// Log receives rotation messages.
	Log logr.Logger
}

// CA issues workload certificates from a key pair kept in a Secret.
type CA struct {
	cfg    Config
	client client.Client
	// external is true when the Secret was made by someone else: it is used as it is and
	// never rotated or rewritten.
	external bool

	mu   sync.RWMutex
	cert *x509.Certificate
	key  crypto.Signer
	prev *x509.Certificate
}

// Load reads the CA Secret, creating it (with a new CA) when it does not exist. c must
// read from the API server directly (not a cache) so that a restart sees the Secret.
func Load(ctx context.Context, c client.Client, cfg Config) (*CA, error) {
	ca := &CA{cfg: cfg, client: c}
	for attempt := 0; attempt < 3; attempt++ {
		var s corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.SecretName}, &s)
		switch {
		case apierrors.IsNotFound(err):
			cert, key, err := ca.newCA(time.Now())
			if err != nil {
				return nil, err
			}
			s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.SecretName, Labels: cfg.Labels}}
			if s.Data, err = encode(cert, key, nil); err != nil {
				return nil, err
			}
			if err := c.Create(ctx, &s); err != nil {
				if apierrors.IsAlreadyExists(err) {
					continue // another replica made it first: use theirs
				}
				return nil, fmt.Errorf("creating CA Secret %s/%s: %w", cfg.Namespace, cfg.SecretName, err)
			}
			cfg.Log.Info("created the built-in CA", "secret", cfg.Namespace+"/"+cfg.SecretName, "notAfter", cert.NotAfter)
			ca.cert, ca.key = cert, key
			return ca, nil
		case err != nil:
			return nil, fmt.Errorf("reading CA Secret %s/%s: %w", cfg.Namespace, cfg.SecretName, err)
		}
		if err := ca.decode(s.Data); err != nil {
			return nil, fmt.Errorf("CA Secret %s/%s: %w", cfg.Namespace, cfg.SecretName, err)
		}
		ca.external = !owned(s.Labels, cfg.Labels)
		return ca, nil
	}
	return nil, fmt.Errorf("CA Secret %s/%s keeps changing while being created", cfg.Namespace, cfg.SecretName)
}

func owned(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Issue signs a certificate for req with a fresh key. Its lifetime ends no later than
// the CA's own.
func (ca *CA) Issue(_ context.Context, req backend.Request) (*backend.Credential, error) {
	key, err := backend.NewKey()
	if err != nil {
		return nil, err
	}
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	now := time.Now()
	notAfter := now.Add(req.TTL)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      req.Subject,
		DNSNames:     req.DNSNames,
		// A minute of slack for clocks that lag the operator's.
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if req.SPIFFEID != nil {
		tmpl.URIs = append(tmpl.URIs, req.SPIFFEID)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", req.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate just signed: %w", err)
	}
	return &backend.Credential{Key: key, Chain: []*x509.Certificate{leaf}, Roots: ca.rootsLocked(now)}, nil
}

// BundleID identifies the current trust bundle.
func (ca *CA) BundleID(context.Context) (string, error) {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	return backend.Fingerprint(ca.rootsLocked(time.Now())), nil
}

// Roots returns the trust bundle: the current CA and, until it expires, the previous one.
func (ca *CA) Roots() []*x509.Certificate {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	return ca.rootsLocked(time.Now())
}

func (ca *CA) rootsLocked(now time.Time) []*x509.Certificate {
	roots := []*x509.Certificate{ca.cert}
	if ca.prev != nil && now.Before(ca.prev.NotAfter) {
		roots = append(roots, ca.prev)
	}
	return roots
}

// RotationDue returns when the current CA should be replaced.
func (ca *CA) RotationDue() time.Time {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	life := ca.cert.NotAfter.Sub(ca.cert.NotBefore)
	return ca.cert.NotBefore.Add(time.Duration(float64(life) * ca.cfg.RotateAfter))
}

// Rotate replaces the current CA with a new one and keeps the current one as previous.
// A CA Secret this operator did not create is never rotated.
func (ca *CA) Rotate(ctx context.Context) error {
	if ca.external {
		return errors.New("the CA Secret was not created by this operator; rotate it by replacing its contents")
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	cert, key, err := ca.newCA(time.Now())
	if err != nil {
		return err
	}
	data, err := encode(cert, key, ca.cert)
	if err != nil {
		return err
	}
	var s corev1.Secret
	if err := ca.client.Get(ctx, client.ObjectKey{Namespace: ca.cfg.Namespace, Name: ca.cfg.SecretName}, &s); err != nil {
		return fmt.Errorf("reading CA Secret before rotating: %w", err)
	}
	if !bytes.Equal(s.Data[CertKey], pemCert(ca.cert)) {
		// Someone else rotated it: take theirs instead of overwriting it.
		return ca.decodeLocked(s.Data)
	}
	s.Data = data
	if err := ca.client.Update(ctx, &s); err != nil {
		return fmt.Errorf("writing rotated CA Secret: %w", err)
	}
	ca.cfg.Log.Info("rotated the built-in CA", "secret", ca.cfg.Namespace+"/"+ca.cfg.SecretName, "notAfter", cert.NotAfter, "previousNotAfter", ca.cert.NotAfter)
	ca.prev, ca.cert, ca.key = ca.cert, cert, key
	return nil
}

// Start rotates the CA whenever it is due, until ctx ends (a manager Runnable, so only
// the elected leader rotates).
func (ca *CA) Start(ctx context.Context) error {
	if ca.external {
		<-ctx.Done()
		return nil
	}
	for {
		wait := time.Until(ca.RotationDue())
		if wait <= 0 {
			if err := ca.Rotate(ctx); err != nil {
				ca.cfg.Log.Error(err, "rotating the built-in CA; retrying in a minute")
				wait = time.Minute
			} else {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (ca *CA) newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := backend.NewKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	subject := pkix.Name{CommonName: "intentguard workload CA " + now.UTC().Format("2006-01-02T15:04:05Z")}
	if ca.cfg.Organization != "" {
		subject.Organization = []string{ca.cfg.Organization}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ca.cfg.Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signing the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the CA just signed: %w", err)
	}
	return cert, key, nil
}

func (ca *CA) decode(data map[string][]byte) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.decodeLocked(data)
}

func (ca *CA) decodeLocked(data map[string][]byte) error {
	cert, err := parseCert(data[CertKey])
	if err != nil {
		return fmt.Errorf("%s: %w", CertKey, err)
	}
	block, _ := pem.Decode(data[KeyKey])
	if block == nil {
		return fmt.Errorf("%s: no PEM block", KeyKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", KeyKey, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("%s: key of type %T cannot sign", KeyKey, k)
	}
	var prev *x509.Certificate
	if len(data[PreviousKey]) > 0 {
		if prev, err = parseCert(data[PreviousKey]); err != nil {
			return fmt.Errorf("%s: %w", PreviousKey, err)
		}
	}
	ca.cert, ca.key, ca.prev = cert, signer, prev
	return nil
}

func encode(cert *x509.Certificate, key crypto.Signer, prev *x509.Certificate) (map[string][]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding CA key: %w", err)
	}
	data := map[string][]byte{
		CertKey: pemCert(cert),
		KeyKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}
	if prev != nil {
		data[PreviousKey] = pemCert(prev)
	}
	return data, nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("drawing a serial number: %w", err)
	}
	return n, nil
}
