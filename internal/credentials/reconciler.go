package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
)

// Labels and annotations this operator puts on the Secrets it owns.
const (
	annPrefix = "credentials.intentguard.dev/"
	// AnnIdentity records the workload identity a Secret was issued for.
	AnnIdentity = annPrefix + "identity"
	// AnnSPIFFEID records the certificate's SPIFFE ID.
	AnnSPIFFEID = annPrefix + "spiffe-id"
	// AnnNotAfter records when the certificate expires.
	AnnNotAfter = annPrefix + "not-after"
	// AnnRenewAt records when the certificate is renewed (fraction of its life, less jitter).
	AnnRenewAt = annPrefix + "renew-at"
	// annSpec is a digest of everything the Secret's contents depend on besides the key:
	// a change to it (new DNS name, format, file name ...) reissues.
	annSpec = annPrefix + "spec"
	// annBundle is the trust bundle the Secret was issued under: a CA rotation reissues.
	annBundle = annPrefix + "bundle"
	// AnnRestartedAt is set on a workload's pod template to roll it after a renewal.
	AnnRestartedAt = annPrefix + "restartedAt"
)

// Event reasons.
const (
	ReasonIssued      = "CertificateIssued"
	ReasonRenewed     = "CertificateRenewed"
	ReasonInvalid     = "InvalidCredentialsRequest"
	ReasonConflict    = "SecretConflict"
	ReasonIssueFailed = "IssueFailed"
	ReasonRestarted   = "WorkloadRestarted"
	// ReasonDNSNameRefused: the pod asked for a DNS name outside its namespace.
	ReasonDNSNameRefused = "DNSNameRefused"
	// ReasonTTLRefused: the pod asked for a lifetime outside the operator's bounds.
	ReasonTTLRefused = "CertificateTTLRefused"
)

// Options are the issuing settings shared by every Secret.
type Options struct {
	TrustDomain    string
	SPIFFEIDFormat string
	// Organization is the O= of every workload certificate (principal.Subject).
	Organization string
	DefaultTTL   time.Duration
	MinTTL       time.Duration
	// MaxTTL is the longest lifetime a pod may ask for; longer requests are refused.
	MaxTTL time.Duration
	// DNS decides which extra DNS names a pod may have.
	DNS DNSPolicy
	// BundleCheck is how often the trust bundle is compared with the one the Secrets
	// were issued under, to update them all as soon as it changes.
	BundleCheck time.Duration
	// Renewal says when a certificate is renewed (fraction of its life, less jitter).
	Renewal pki.Renewal
}

// SecretReconciler keeps one Secret, named by the pods' tls-secret-name annotation, in
// step with the identity of the workload whose pods ask for it. Its request key is the
// Secret's namespace and name.
type SecretReconciler struct {
	Client    client.Client
	APIReader client.Reader
	Issuer    backend.Issuer
	Recorder  events.EventRecorder
	Options   Options
	// Owners resolves identities by the rule the intents operator follows too.
	Owners *identity.Owners
}

// Reconcile issues, renews or leaves alone one Secret.
func (r *SecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(req.Namespace), client.MatchingFields{IndexSecretName: req.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods asking for Secret %s: %w", req, err)
	}
	live := pods.Items[:0]
	for _, p := range pods.Items {
		if p.DeletionTimestamp.IsZero() && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		// Nobody asks for it any more: the Secret stays until its owner is deleted, so
		// that a workload scaled to zero finds it again when it scales back up.
		return ctrl.Result{}, nil
	}
	// The newest pod speaks for its workload: during a rollout it carries the new
	// template's annotations.
	sort.Slice(live, func(i, j int) bool { return newer(&live[i], &live[j]) })
	ids := map[identity.Identity]bool{}
	var id identity.Identity
	for i := range live {
		pid, err := identity.Resolve(ctx, &live[i], r.Owners.Lookup)
		if err != nil {
			return ctrl.Result{}, err
		}
		if i == 0 {
			id = pid
		}
		ids[identityKey(pid)] = true
	}
	pod := &live[0]
	if len(ids) > 1 {
		var names []string
		for i := range ids {
			names = append(names, i.Namespace+"/"+i.Name)
		}
		sort.Strings(names)
		msg := fmt.Sprintf("Secret %s is asked for by the pods of %d workloads (%s); a Secret holds one workload's identity, so none is issued: give each workload its own tls-secret-name", req.Name, len(names), strings.Join(names, ", "))
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonConflict, "Issue", "%s", msg)
		return ctrl.Result{}, nil
	}
	spec, err := ParseSpec(pod.Annotations)
	if err != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonInvalid, "Issue", "%s", err.Error())
		return ctrl.Result{}, nil
	}
	if err := r.Options.DNS.checkAll(pod.Namespace, id, spec.DNSNames); err != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonDNSNameRefused, "Issue", "%s; no certificate is issued", err.Error())
		return ctrl.Result{}, nil
	}
	ttl, err := r.Options.ttl(spec)
	if err != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonTTLRefused, "Issue", "%s; no certificate is issued", err.Error())
		return ctrl.Result{}, nil
	}
	spiffeID, err := SPIFFEID(r.Options.SPIFFEIDFormat, r.Options.TrustDomain, id)
	if err != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonInvalid, "Issue", "identity %s: %s", id.Name, err.Error())
		return ctrl.Result{}, nil
	}
	issue := backend.Request{
		SPIFFEID: spiffeID,
		Subject:  principal.Subject(id, r.Options.Organization),
		DNSNames: dnsNames(id, spec.DNSNames),
		TTL:      ttl,
	}
	digest := specDigest(id, spec, issue)

	existing, err := r.existing(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if existing != nil && !owns(existing) {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonConflict, "Issue",
			"Secret %s already exists and was not created by the credentials operator; it is left alone. Rename it or change %s%s", req.Name, Prefix, AnnSecretName)
		return ctrl.Result{}, nil
	}

	var password []byte
	if spec.NeedsPassword() {
		password, err = r.password(ctx, pod, spec)
		if err != nil {
			var user *userError
			if errors.As(err, &user) {
				r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, user.reason, "Issue", "%s", user.msg)
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
	bundleID, err := r.Issuer.BundleID(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the trust bundle: %w", err)
	}

	now := time.Now()
	if existing != nil {
		if due, renewAt := r.due(existing, spec, digest, bundleID, password, now); !due {
			return ctrl.Result{RequeueAfter: renewAt.Sub(now)}, nil
		}
	}

	cred, err := r.Issuer.Issue(ctx, issue)
	if err != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonIssueFailed, "Issue", "issuing a certificate for %s: %s", spiffeID, err.Error())
		return ctrl.Result{}, fmt.Errorf("issuing a certificate for %s: %w", spiffeID, err)
	}
	data, err := Render(spec, cred, password)
	if err != nil {
		return ctrl.Result{}, err
	}
	renewAt := r.renewAt(now, cred.Leaf())
	owner, err := rootOwner(ctx, r.Owners, pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name},
		Type:       corev1.SecretTypeOpaque,
	}
	if existing != nil {
		secret = existing.DeepCopy()
	}
	secret.Labels = merge(secret.Labels, map[string]string{ownership.Label: ownership.CredentialsOperator})
	secret.Annotations = merge(secret.Annotations, map[string]string{
		AnnIdentity: id.String(),
		AnnSPIFFEID: spiffeID.String(),
		AnnNotAfter: cred.Leaf().NotAfter.UTC().Format(time.RFC3339),
		AnnRenewAt:  renewAt.UTC().Format(time.RFC3339),
		annSpec:     digest,
		annBundle:   bundleID,
	})
	if owner != nil {
		secret.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	secret.Data = data
	if existing == nil {
		if err := r.Client.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, fmt.Errorf("creating Secret %s: %w", req, err)
		}
		logger.Info("issued certificate", "secret", req.String(), "spiffeID", spiffeID.String(), "notAfter", cred.Leaf().NotAfter, "renewAt", renewAt)
		r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, ReasonIssued, "Issue", "issued %s for %s into Secret %s (expires %s)", spec.Format, spiffeID, req.Name, cred.Leaf().NotAfter.UTC().Format(time.RFC3339))
		return ctrl.Result{RequeueAfter: renewAt.Sub(now)}, nil
	}
	if err := r.Client.Update(ctx, secret); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("updating Secret %s: %w", req, err)
	}
	logger.Info("renewed certificate", "secret", req.String(), "spiffeID", spiffeID.String(), "notAfter", cred.Leaf().NotAfter, "renewAt", renewAt)
	r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, ReasonRenewed, "Renew", "renewed %s for %s in Secret %s (expires %s)", spec.Format, spiffeID, req.Name, cred.Leaf().NotAfter.UTC().Format(time.RFC3339))
	if spec.Restart && owner != nil {
		if err := r.restart(ctx, pod, owner, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: renewAt.Sub(now)}, nil
}

// identityKey drops the kind, which is empty for annotated identities: two pods with the
// same name in one namespace are one identity whichever way they got it.
func identityKey(id identity.Identity) identity.Identity {
	return identity.Identity{Namespace: id.Namespace, Name: id.Name}
}

// existing returns the Secret of that name: this operator's from the cache, or any other
// from the API server (the cache holds only this operator's Secrets).
func (r *SecretReconciler) existing(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	err := r.Client.Get(ctx, key, &s)
	if err == nil {
		return &s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.APIReader.Get(ctx, key, m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if owns(&corev1.Secret{ObjectMeta: m.ObjectMeta}) {
		// Ours, but not in the cache yet (just created): read it whole, so that a
		// reconcile racing the cache does not issue it a second time.
		if err := r.APIReader.Get(ctx, key, &s); err != nil {
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		return &s, nil
	}
	// Someone else's: only its metadata is ever read.
	return &corev1.Secret{ObjectMeta: m.ObjectMeta}, nil
}

func owns(s *corev1.Secret) bool { return s.Labels[ownership.Label] == ownership.CredentialsOperator }

// due reports whether an owned Secret must be reissued, and otherwise when.
func (r *SecretReconciler) due(s *corev1.Secret, spec Spec, digest, bundleID string, password []byte, now time.Time) (bool, time.Time) {
	renewAt, err := time.Parse(time.RFC3339, s.Annotations[AnnRenewAt])
	if err != nil || !now.Before(renewAt) {
		return true, now
	}
	if s.Annotations[annSpec] != digest || s.Annotations[annBundle] != bundleID {
		return true, now
	}
	for _, k := range spec.fileKeys() {
		if len(s.Data[k.name]) == 0 {
			return true, now
		}
	}
	if spec.NeedsPassword() {
		// A keystore that no longer opens with the password (it was changed) is rewritten.
		if _, err := Parse(spec, s.Data, password); err != nil {
			return true, now
		}
	}
	return false, renewAt
}

// renewAt is the renewal time of leaf, issued at now: by the renewal rule, but never
// sooner than a second from now, so a certificate whose life is all but over (its CA
// expires) is not reissued in a loop.
func (r *SecretReconciler) renewAt(now time.Time, leaf *x509.Certificate) time.Time {
	if at := r.Options.Renewal.At(leaf); at.After(now.Add(time.Second)) {
		return at
	}
	return now.Add(time.Second)
}

// ttl is the lifetime to ask for: the pod's, within the operator's bounds, or the default.
func (o Options) ttl(spec Spec) (time.Duration, error) {
	if spec.TTL == 0 {
		return o.DefaultTTL, nil
	}
	if spec.TTL < o.MinTTL {
		return 0, fmt.Errorf("%s%s is %s, below the operator's minimum of %s", Prefix, AnnTTL, spec.TTL, o.MinTTL)
	}
	if o.MaxTTL > 0 && spec.TTL > o.MaxTTL {
		return 0, fmt.Errorf("%s%s is %s, above the operator's maximum of %s (--max-cert-ttl)", Prefix, AnnTTL, spec.TTL, o.MaxTTL)
	}
	return spec.TTL, nil
}

type userError struct{ reason, msg string }

// Error returns the message shown to the user in the Event.
func (e *userError) Error() string { return e.msg }

// password reads the keystore password from the Secret the pod names, or from (first
// creating) the generated one. It is never logged or put in an annotation.
func (r *SecretReconciler) password(ctx context.Context, pod *corev1.Pod, spec Spec) ([]byte, error) {
	name := spec.PasswordSecretName()
	key := types.NamespacedName{Namespace: pod.Namespace, Name: name}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s)
	switch {
	case err == nil:
		if spec.PasswordSecret == "" && !owns(&s) {
			return nil, &userError{ReasonConflict, fmt.Sprintf("Secret %s (where the keystore password of %s would be generated) already exists and was not created by the credentials operator; name it with %s if it holds the password under key %q", name, spec.SecretName, PasswordSecretAnnotation, PasswordKey)}
		}
		p := s.Data[PasswordKey]
		if len(p) < 6 {
			return nil, &userError{ReasonInvalid, fmt.Sprintf("Secret %s has no key %q of at least 6 characters (Java keystores refuse shorter passwords)", name, PasswordKey)}
		}
		return p, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading password Secret %s: %w", key, err)
	case spec.PasswordSecret != "":
		return nil, &userError{ReasonInvalid, fmt.Sprintf("password Secret %s named by %s does not exist", name, PasswordSecretAnnotation)}
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generating a keystore password: %w", err)
	}
	p := []byte(base64.RawURLEncoding.EncodeToString(raw))
	owner, err := rootOwner(ctx, r.Owners, pod)
	if err != nil {
		return nil, err
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: name, Labels: map[string]string{ownership.Label: ownership.CredentialsOperator}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{PasswordKey: p},
	}
	if owner != nil {
		s.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if err := r.Client.Create(ctx, &s); err != nil {
		return nil, fmt.Errorf("creating password Secret %s: %w", key, err)
	}
	return p, nil
}

// restart rolls the workload (as kubectl rollout restart does) so that its pods load
// the renewed certificate. Bare pods and other kinds are left running: deleting them
// would lose them.
func (r *SecretReconciler) restart(ctx context.Context, pod *corev1.Pod, owner *metav1.OwnerReference, now time.Time) error {
	var obj client.Object
	switch owner.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(schemaOf(owner))
		m.Namespace, m.Name = pod.Namespace, owner.Name
		obj = m
	default:
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonRestarted, "Restart", "%s asks for a restart on renewal, but a %s cannot be rolled; restart it to load the renewed certificate", Prefix+AnnRestart, owner.Kind)
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, AnnRestartedAt, now.UTC().Format(time.RFC3339))
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("restarting %s %s/%s after renewal: %w", owner.Kind, pod.Namespace, owner.Name, err)
	}
	r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, ReasonRestarted, "Restart", "restarted %s %s to load the renewed certificate", owner.Kind, owner.Name)
	return nil
}

// dnsNames are <name>.<namespace> (first: SPIRE makes the first DNS name the CN, and the
// CN must be principal.CommonName) followed by the annotation's, without repeats.
func dnsNames(id identity.Identity, extra []string) []string {
	out := []string{principal.CommonName(id)}
	for _, n := range extra {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func specDigest(id identity.Identity, spec Spec, req backend.Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%s", id.Namespace, id.Name, req.SPIFFEID, req.Subject.String(), req.TTL, strings.Join(req.DNSNames, ","), spec.Format)
	for _, k := range spec.fileKeys() {
		fmt.Fprintf(h, "\x00%s", k.name)
	}
	fmt.Fprintf(h, "\x00%s", spec.PasswordSecretName())
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func merge(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}
