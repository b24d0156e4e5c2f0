package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/pki"
)

// Keys of the certificate Secret.
const (
	// SecretCAKey holds the PEM CA certificates the API server trusts (the current one
	// first, then the previous one while it is valid).
	SecretCAKey = "ca.crt"
	// SecretCAKeyKey holds the PEM private key of the current CA.
	SecretCAKeyKey = "ca.key"
)

// CertConfig says where the operator keeps its webhook certificate and who must trust it.
type CertConfig struct {
	// Namespace and SecretName locate the Secret every replica shares.
	Namespace, SecretName string
	// Hosts are the DNS names (or IP addresses) the API server uses to call the webhooks.
	Hosts []string
	// CertDir receives tls.crt and tls.key for the webhook server.
	CertDir string
	// WebhookConfigurations are the ValidatingWebhookConfigurations whose caBundle to set.
	WebhookConfigurations []string
	// CRDs are the CustomResourceDefinitions whose conversion webhook caBundle to set.
	CRDs []string
	// Validity is the lifetime of a serving certificate; the CA lives ten times as long.
	// A certificate is replaced once less than a third of its lifetime remains.
	Validity time.Duration
	// CheckInterval is how often the certificate and the bundles are checked.
	CheckInterval time.Duration
	// BundleGrace is how long to wait, after changing a caBundle, before serving a
	// certificate it is needed for.
	BundleGrace time.Duration
}

// CertRotator creates the webhook serving certificate, renews it before it expires, and
// sets the caBundle of the webhook configurations and CRDs. Every replica runs one: the
// Secret is written only when what it holds is missing or due for renewal, and with the
// resourceVersion read, so when replicas race one write wins and the others adopt it.
type CertRotator struct {
	cfg CertConfig
	c   client.Client
	log logr.Logger
	now func() time.Time
}

// NewCertRotator returns a rotator that talks to the API server through c, which should
// read live objects (not a cache).
func NewCertRotator(c client.Client, cfg CertConfig, log logr.Logger) *CertRotator {
	if cfg.Validity == 0 {
		cfg.Validity = 365 * 24 * time.Hour
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = time.Hour
	}
	if cfg.BundleGrace == 0 {
		cfg.BundleGrace = 2 * time.Second
	}
	return &CertRotator{cfg: cfg, c: c, log: log, now: time.Now}
}

// NeedLeaderElection is false: every replica serves webhooks and needs the certificate.
func (r *CertRotator) NeedLeaderElection() bool { return false }

// Start keeps the certificate and the bundles current until ctx ends.
func (r *CertRotator) Start(ctx context.Context) error {
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Ensure(ctx); err != nil {
				r.log.Error(err, "keeping the webhook certificate current; retrying", "in", r.cfg.CheckInterval)
			}
		}
	}
}

// Ensure makes one pass: the Secret holds a certificate with enough life left, CertDir
// holds the same certificate, and every configured bundle trusts its CA.
func (r *CertRotator) Ensure(ctx context.Context) error {
	secret, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	// Trust first, serve second: a certificate from a new CA is served only once the API
	// server has the bundle with that CA, and the bundle's change takes a moment to reach
	// the API server's webhook clients.
	changed, err := r.patchBundles(ctx, secret.Data[SecretCAKey])
	if err != nil {
		return err
	}
	if changed && r.cfg.BundleGrace > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.BundleGrace):
		}
	}
	return r.writeFiles(secret)
}

// EnsureWithRetry calls Ensure until it succeeds or timeout passes; the operator needs a
// certificate before its webhook server can start.
func (r *CertRotator) EnsureWithRetry(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := r.Ensure(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("creating the webhook certificate: %w", err)
		}
		r.log.Info("webhook certificate not ready yet", "error", err.Error())
		time.Sleep(time.Second)
	}
}

func (r *CertRotator) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: r.cfg.Namespace, Name: r.cfg.SecretName}
	for attempt := 0; attempt < 5; attempt++ {
		var secret corev1.Secret
		err := r.c.Get(ctx, key, &secret)
		switch {
		case apierrors.IsNotFound(err):
			secret = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeTLS}
			if secret.Data, err = r.issue(nil); err != nil {
				return nil, err
			}
			err = r.c.Create(ctx, &secret)
			if apierrors.IsAlreadyExists(err) {
				continue // another replica created it first: use theirs
			}
			if err != nil {
				return nil, fmt.Errorf("creating Secret %s: %w", key, err)
			}
			r.log.Info("created the webhook certificate", "secret", key.String())
			return &secret, nil
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		reason := r.renewalReason(secret.Data)
		if reason == "" {
			return &secret, nil
		}
		data, err := r.issue(secret.Data)
		if err != nil {
			return nil, err
		}
		secret.Data = data
		err = r.c.Update(ctx, &secret)
		if apierrors.IsConflict(err) {
			continue // another replica renewed it first: read theirs
		}
		if err != nil {
			return nil, fmt.Errorf("updating Secret %s: %w", key, err)
		}
		r.log.Info("renewed the webhook certificate", "secret", key.String(), "reason", reason)
		return &secret, nil
	}
	return nil, fmt.Errorf("Secret %s kept changing under us", key)
}

// renewal is the rule for the serving certificate and its CA: renewed with a third of
// their life left, the same moment on every replica.
var renewal = pki.Renewal{Fraction: 2.0 / 3}

// renewalReason says why the certificate in data must be replaced, or "" when it is good.
func (r *CertRotator) renewalReason(data map[string][]byte) string {
	if _, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]); err != nil {
		return "no valid certificate and key"
	}
	leaf, err := pki.ParseCert(data[corev1.TLSCertKey])
	if err != nil {
		return "unparsable certificate"
	}
	now := r.now()
	if renewal.Due(leaf, now) {
		return "expires at " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	for _, h := range r.cfg.Hosts {
		if leaf.VerifyHostname(h) != nil {
			return "not valid for " + h
		}
	}
	ca, err := parseCA(data)
	if err != nil {
		return err.Error()
	}
	if renewal.Due(ca.Cert, now) {
		return "CA expires at " + ca.Cert.NotAfter.UTC().Format(time.RFC3339)
	}
	if leaf.CheckSignatureFrom(ca.Cert) != nil {
		return "certificate not signed by the CA"
	}
	return ""
}

// parseCA reads the current CA (the first of the bundle) and its key.
func parseCA(data map[string][]byte) (*pki.CA, error) {
	if len(data[SecretCAKey]) == 0 {
		return nil, errors.New("no CA certificate")
	}
	cert, err := pki.ParseCert(data[SecretCAKey])
	if err != nil {
		return nil, fmt.Errorf("unparsable CA certificate: %w", err)
	}
	if len(data[SecretCAKeyKey]) == 0 {
		return nil, errors.New("no CA key")
	}
	key, err := pki.ParseKey(data[SecretCAKeyKey])
	if err != nil {
		return nil, fmt.Errorf("unparsable CA key: %w", err)
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}

// issue returns Secret data with a new serving certificate, signed by the CA in old when
// that CA is good for long enough, else by a new CA; the bundle keeps the previous CA
// while it is valid, so that pods still serving a certificate it signed stay trusted.
func (r *CertRotator) issue(old map[string][]byte) (map[string][]byte, error) {
	now := r.now()
	ca, err := parseCA(old)
	var previous []*x509.Certificate
	if err != nil || renewal.Due(ca.Cert, now) {
		if err == nil && now.Before(ca.Cert.NotAfter) {
			previous = append(previous, ca.Cert)
		}
		if ca, err = pki.NewCA(pkix.Name{CommonName: "intentguard-webhook-ca"}, 10*r.cfg.Validity, now); err != nil {
			return nil, fmt.Errorf("creating the webhook CA: %w", err)
		}
	}
	dnsNames, ips := pki.SplitHosts(r.cfg.Hosts)
	leaf, err := ca.Issue(pki.Request{
		Subject:     pkix.Name{CommonName: r.cfg.Hosts[0]},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		Usage:       pki.ServerAuth,
		TTL:         r.cfg.Validity,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("issuing the serving certificate: %w", err)
	}
	key, err := pki.EncodeKey(leaf.Key)
	if err != nil {
		return nil, fmt.Errorf("encoding the serving key: %w", err)
	}
	caKey, err := pki.EncodeKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA key: %w", err)
	}
	return map[string][]byte{
		corev1.TLSCertKey:       pki.EncodeCerts(leaf.Cert),
		corev1.TLSPrivateKeyKey: key,
		SecretCAKey:             pki.EncodeCerts(append([]*x509.Certificate{ca.Cert}, previous...)...),
		SecretCAKeyKey:          caKey,
	}, nil
}

// writeFiles puts the certificate where the webhook server reads it, replacing each file
// in one rename so the server never reads half of one.
func (r *CertRotator) writeFiles(secret *corev1.Secret) error {
	if err := os.MkdirAll(r.cfg.CertDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", r.cfg.CertDir, err)
	}
	// The key first: the server reloads on the certificate's change and reads both.
	for _, name := range []string{corev1.TLSPrivateKeyKey, corev1.TLSCertKey} {
		path := filepath.Join(r.cfg.CertDir, name)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, secret.Data[name]) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, secret.Data[name], 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("replacing %s: %w", path, err)
		}
	}
	return nil
}

// patchBundles makes every configured caBundle trust the CAs in bundle, and reports
// whether it changed one. A bundle that already trusts them is left as it is: a replica
// that read the Secret just before another one renewed the CA must not take the new CA
// out again (the renewing replica's bundle holds the old CA too, so it trusts both).
func (r *CertRotator) patchBundles(ctx context.Context, bundle []byte) (bool, error) {
	var errs []error
	changedAny := false
	for _, name := range r.cfg.WebhookConfigurations {
		changed, err := r.patchUntilTrusted(ctx, bundle, &admissionv1.ValidatingWebhookConfiguration{}, name, func(o client.Object) [][]byte {
			var out [][]byte
			for _, w := range o.(*admissionv1.ValidatingWebhookConfiguration).Webhooks {
				out = append(out, w.ClientConfig.CABundle)
			}
			return out
		}, func(o client.Object) error {
			hook := o.(*admissionv1.ValidatingWebhookConfiguration)
			for i := range hook.Webhooks {
				hook.Webhooks[i].ClientConfig.CABundle = bundle
			}
			return nil
		})
		changedAny = changedAny || changed
		if err != nil {
			errs = append(errs, fmt.Errorf("setting the caBundle of ValidatingWebhookConfiguration %s: %w", name, err))
		}
	}
	for _, name := range r.cfg.CRDs {
		changed, err := r.patchUntilTrusted(ctx, bundle, &apiextensionsv1.CustomResourceDefinition{}, name, func(o client.Object) [][]byte {
			if cc := conversionClientConfig(o.(*apiextensionsv1.CustomResourceDefinition)); cc != nil {
				return [][]byte{cc.CABundle}
			}
			return nil
		}, func(o client.Object) error {
			cc := conversionClientConfig(o.(*apiextensionsv1.CustomResourceDefinition))
			if cc == nil {
				return errors.New("it has no conversion webhook to trust the certificate")
			}
			cc.CABundle = bundle
			return nil
		})
		changedAny = changedAny || changed
		if err != nil {
			errs = append(errs, fmt.Errorf("setting the conversion caBundle of CustomResourceDefinition %s: %w", name, err))
		}
	}
	return changedAny, errors.Join(errs...)
}

func conversionClientConfig(crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.WebhookClientConfig {
	c := crd.Spec.Conversion
	if c == nil || c.Strategy != apiextensionsv1.WebhookConverter || c.Webhook == nil {
		return nil
	}
	return c.Webhook.ClientConfig
}

// patchUntilTrusted reads the object, and while one of its bundles does not trust every
// CA of bundle, sets them with a patch that fails if the object changed since it was
// read, reading it again after such a conflict.
func (r *CertRotator) patchUntilTrusted(ctx context.Context, bundle []byte, obj client.Object, name string,
	bundles func(client.Object) [][]byte, set func(client.Object) error) (bool, error) {
	for attempt := 0; ; attempt++ {
		if err := r.c.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
			return false, err
		}
		current := bundles(obj)
		if len(current) > 0 && !slices.ContainsFunc(current, func(b []byte) bool { return !trustsAll(b, bundle) }) {
			return false, nil
		}
		base := obj.DeepCopyObject().(client.Object)
		if err := set(obj); err != nil {
			return false, err
		}
		err := r.c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			r.log.Info("set the caBundle", "kind", fmt.Sprintf("%T", obj), "name", name)
			return true, nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return false, err
		}
	}
}

// trustsAll reports whether the PEM bundle have holds every certificate of the PEM
// bundle want.
func trustsAll(have, want []byte) bool {
	held := map[string]bool{}
	if certs, err := pki.ParseCerts(have); err == nil {
		for _, c := range certs {
			held[string(c.Raw)] = true
		}
	}
	certs, err := pki.ParseCerts(want)
	if err != nil {
		return true
	}
	for _, c := range certs {
		if !held[string(c.Raw)] {
			return false
		}
	}
	return true
}
