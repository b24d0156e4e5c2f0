// Package ca is the credentials operator's built-in certificate authority: a self-signed
// CA whose key pair lives in a Secret in the operator's namespace, created on first start
// and rotated before it expires, in two steps. Halfway to the rotation the next CA is made
// and published in the trust bundle while the current one still signs, so that workloads
// renewing in the meantime trust it before any certificate it signs reaches them; at the
// rotation it starts signing, and the previous CA stays in the bundle until it expires.
package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/pki"
)

// Keys of the CA Secret.
const (
	CertKey     = "ca.crt"
	KeyKey      = "ca.key"
	NextCertKey = "next.crt"
	NextKeyKey  = "next.key"
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
	// RotateAfter is the fraction of a CA's lifetime after which the next CA replaces
	// it (pki.Renewal, without jitter); the next CA is published at half that.
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

	mu      sync.RWMutex
	cert    *x509.Certificate
	key     crypto.Signer
	next    *x509.Certificate
	nextKey crypto.Signer
	prev    *x509.Certificate
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
			if s.Data, err = encode(state{cert: cert, key: key}); err != nil {
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

// Issue signs a certificate for req with a fresh key, for server and client use. Its
// lifetime ends no later than the CA's own.
func (ca *CA) Issue(_ context.Context, req backend.Request) (*backend.Credential, error) {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	now := time.Now()
	pr := pki.Request{Subject: req.Subject, DNSNames: req.DNSNames, Usage: pki.ServerAuth | pki.ClientAuth, TTL: req.TTL}
	if req.SPIFFEID != nil {
		pr.URIs = append(pr.URIs, req.SPIFFEID)
	}
	leaf, err := (&pki.CA{Cert: ca.cert, Key: ca.key}).Issue(pr, now)
	if err != nil {
		return nil, err
	}
	return &backend.Credential{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert}, Roots: ca.rootsLocked(now)}, nil
}

// BundleID identifies the current trust bundle.
func (ca *CA) BundleID(context.Context) (string, error) {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	return pki.Fingerprint(ca.rootsLocked(time.Now())), nil
}

// Roots returns the trust bundle: the current CA and, until it expires, the previous one.
func (ca *CA) Roots() []*x509.Certificate {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	return ca.rootsLocked(time.Now())
}

func (ca *CA) rootsLocked(now time.Time) []*x509.Certificate {
	roots := []*x509.Certificate{ca.cert}
	if ca.next != nil {
		roots = append(roots, ca.next)
	}
	if ca.prev != nil && now.Before(ca.prev.NotAfter) {
		roots = append(roots, ca.prev)
	}
	return roots
}

// RotationDue returns when the next CA is published and when it replaces the current one.
func (ca *CA) RotationDue() (publish, rotate time.Time) {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	publish = pki.Renewal{Fraction: ca.cfg.RotateAfter / 2}.At(ca.cert)
	rotate = pki.Renewal{Fraction: ca.cfg.RotateAfter}.At(ca.cert)
	return publish, rotate
}

// Step publishes the next CA or rotates to it, whichever is due at now, and returns
// whether it changed anything. A CA Secret this operator did not create is never changed.
func (ca *CA) Step(ctx context.Context, now time.Time) (bool, error) {
	if ca.external {
		return false, nil
	}
	publish, rotate := ca.RotationDue()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	st := state{cert: ca.cert, key: ca.key, next: ca.next, nextKey: ca.nextKey, prev: ca.prev}
	var what string
	switch {
	case !now.Before(rotate):
		if st.next == nil {
			cert, key, err := ca.newCA(now)
			if err != nil {
				return false, err
			}
			st.next, st.nextKey = cert, key
		}
		st = state{cert: st.next, key: st.nextKey, prev: st.cert}
		what = "rotated the built-in CA: the published next CA signs from now on"
	case !now.Before(publish) && st.next == nil:
		cert, key, err := ca.newCA(now)
		if err != nil {
			return false, err
		}
		st.next, st.nextKey = cert, key
		what = "published the next built-in CA in the trust bundle"
	default:
		return false, nil
	}
	data, err := encode(st)
	if err != nil {
		return false, err
	}
	var s corev1.Secret
	if err := ca.client.Get(ctx, client.ObjectKey{Namespace: ca.cfg.Namespace, Name: ca.cfg.SecretName}, &s); err != nil {
		return false, fmt.Errorf("reading CA Secret before rotating: %w", err)
	}
	if !bytes.Equal(s.Data[CertKey], pki.EncodeCerts(ca.cert)) || !bytes.Equal(s.Data[NextCertKey], pemCertOrNil(ca.next)) {
		// Someone else changed it: take theirs instead of overwriting it.
		return true, ca.decodeLocked(s.Data)
	}
	s.Data = data
	if err := ca.client.Update(ctx, &s); err != nil {
		return false, fmt.Errorf("writing CA Secret: %w", err)
	}
	ca.cert, ca.key, ca.next, ca.nextKey, ca.prev = st.cert, st.key, st.next, st.nextKey, st.prev
	ca.cfg.Log.Info(what, "secret", ca.cfg.Namespace+"/"+ca.cfg.SecretName, "notAfter", ca.cert.NotAfter)
	return true, nil
}

// Start publishes and rotates CAs whenever due, until ctx ends (a manager Runnable, so
// only the elected leader does).
func (ca *CA) Start(ctx context.Context) error {
	if ca.external {
		<-ctx.Done()
		return nil
	}
	for {
		changed, err := ca.Step(ctx, time.Now())
		if err != nil {
			ca.cfg.Log.Error(err, "rotating the built-in CA; retrying in a minute")
		}
		if changed && err == nil {
			continue
		}
		publish, rotate := ca.RotationDue()
		wait := time.Until(rotate)
		ca.mu.RLock()
		if ca.next == nil {
			wait = time.Until(publish)
		}
		ca.mu.RUnlock()
		if err != nil || wait < 0 {
			wait = time.Minute
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (ca *CA) newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	subject := pkix.Name{CommonName: "intentguard workload CA " + now.UTC().Format("2006-01-02T15:04:05Z")}
	if ca.cfg.Organization != "" {
		subject.Organization = []string{ca.cfg.Organization}
	}
	made, err := pki.NewCA(subject, ca.cfg.Lifetime, now)
	if err != nil {
		return nil, nil, err
	}
	return made.Cert, made.Key, nil
}

func (ca *CA) decode(data map[string][]byte) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.decodeLocked(data)
}

func (ca *CA) decodeLocked(data map[string][]byte) error {
	cert, err := pki.ParseCert(data[CertKey])
	if err != nil {
		return fmt.Errorf("%s: %w", CertKey, err)
	}
	signer, err := pki.ParseKey(data[KeyKey])
	if err != nil {
		return fmt.Errorf("%s: %w", KeyKey, err)
	}
	var prev, next *x509.Certificate
	var nextKey crypto.Signer
	if len(data[PreviousKey]) > 0 {
		if prev, err = pki.ParseCert(data[PreviousKey]); err != nil {
			return fmt.Errorf("%s: %w", PreviousKey, err)
		}
	}
	if len(data[NextCertKey]) > 0 {
		if next, err = pki.ParseCert(data[NextCertKey]); err != nil {
			return fmt.Errorf("%s: %w", NextCertKey, err)
		}
		if nextKey, err = pki.ParseKey(data[NextKeyKey]); err != nil {
			return fmt.Errorf("%s: %w", NextKeyKey, err)
		}
	}
	ca.cert, ca.key, ca.next, ca.nextKey, ca.prev = cert, signer, next, nextKey, prev
	return nil
}

// state is the CA Secret's contents.
type state struct {
	cert    *x509.Certificate
	key     crypto.Signer
	next    *x509.Certificate
	nextKey crypto.Signer
	prev    *x509.Certificate
}

func encode(st state) (map[string][]byte, error) {
	data := map[string][]byte{CertKey: pki.EncodeCerts(st.cert)}
	k, err := pki.EncodeKey(st.key)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA key: %w", err)
	}
	data[KeyKey] = k
	if st.next != nil {
		data[NextCertKey] = pki.EncodeCerts(st.next)
		if data[NextKeyKey], err = pki.EncodeKey(st.nextKey); err != nil {
			return nil, fmt.Errorf("encoding the next CA key: %w", err)
		}
	}
	if st.prev != nil {
		data[PreviousKey] = pki.EncodeCerts(st.prev)
	}
	return data, nil
}

func pemCertOrNil(c *x509.Certificate) []byte {
	if c == nil {
		return nil
	}
	return pki.EncodeCerts(c)
}
