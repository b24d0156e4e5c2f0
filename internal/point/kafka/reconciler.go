// Package kafka is the Kafka enforcement point: a reconciler per broker (KafkaServerConfig)
// that keeps the broker's ACLs equal to what the intents declare, touching only the ACLs
// it created, and the enforcement.Point that reports it on each ClientIntents.
package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/kafka/broker"
)

const (
	// Finalizer makes deleting a KafkaServerConfig remove the ACLs it caused first.
	Finalizer = "intentguard.dev/kafka-acls"
	// ForceDeleteAnnotation, set to "true" on a KafkaServerConfig being deleted, gives up
	// removing its ACLs (the broker is gone for good): the ACLs stay on the broker.
	ForceDeleteAnnotation = "intentguard.dev/force-delete"
	// CredentialsLabel, set to "true" on a Secret by whoever may write Secrets in its
	// namespace, lets KafkaServerConfigs of that namespace have the operator use it to
	// reach a broker. The operator uses no other Secret: a config names a Secret and an
	// address, so without the opt-in anyone who may create a config could have the
	// operator send any Secret of the namespace to an address of their choosing.
	CredentialsLabel = "intentguard.dev/kafka-credentials"
	// CredentialsAddrsAnnotation, optional on an opted-in Secret, lists the broker
	// addresses (comma-separated host:port) it may be sent to; without it, any address a
	// config of the namespace names.
	CredentialsAddrsAnnotation = "intentguard.dev/kafka-addrs"

	// ConditionConnected, beside the shared Ready, Reconciling and Stalled, says whether
	// the broker answered the last request, and if not, whether it refused or was not
	// reached: Ready alone cannot tell a wrong address from wrong credentials.
	ConditionConnected = "Connected"
	// ConditionACLsInSync says whether the broker holds the desired ACLs, and why not:
	// the shared reasons Enforced and Shadow when it does, a Kafka reason when not.
	ConditionACLsInSync = "ACLsInSync"

	// ReasonConnected: the broker answered (Connected=True).
	ReasonConnected = "Connected"
	// ReasonConfigError: the KafkaServerConfig or what it names (a Secret, a TLS file, the
	// record's name) is refused; nothing was sent to the broker (Ready=False, Failed).
	ReasonConfigError = "ConfigError"
	// ReasonAPIError: reading the cluster or writing the owned-ACL record failed; retried
	// with backoff (Ready=False, Pending).
	ReasonAPIError = "APIError"
	// ReasonBrokerRefused: the broker answered but refused the credentials or their
	// rights; the credentials must change (Ready=False, Failed).
	ReasonBrokerRefused = "BrokerRefused"
	// ReasonBrokerUnreachable: the broker did not answer; retried with backoff
	// (Ready=False, Pending).
	ReasonBrokerUnreachable = "BrokerUnreachable"

	// syncTimeout bounds one sync with a broker (list, create, delete, record).
	syncTimeout = 2 * time.Minute
)

// Options configure the Kafka enforcement point.
type Options struct {
	// Enforcement holds the roll-out settings shared with the NetworkPolicy point.
	Enforcement enforcement.Options
	// ResyncPeriod is how often a broker in sync is listed again, to restore ACLs the
	// broker lost and to pick up rotated credentials. Zero means 5 minutes.
	ResyncPeriod time.Duration
	// MaxBackoff bounds the retry delay for an unreachable broker. Zero means 2 minutes.
	MaxBackoff time.Duration
	// DeleteTimeout is how long a deleted KafkaServerConfig waits for its broker before
	// giving up on removing the ACLs. Zero means 15 minutes.
	DeleteTimeout time.Duration
	// Broker is the template of every broker client (hooks, batch size); Addr, TLS and
	// SASL are set per KafkaServerConfig.
	Broker broker.Config
	// RecordNamespace holds the records of the ACLs the operator created (one ConfigMap
	// per KafkaServerConfig): the operator's own namespace, which tenants cannot write.
	RecordNamespace string
	// TLSDirs are the directories the tls.*File fields of a KafkaServerConfig may name
	// files in; none means those fields are refused.
	TLSDirs []string
}

func (o Options) withDefaults() Options {
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = 5 * time.Minute
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Minute
	}
	if o.DeleteTimeout <= 0 {
		o.DeleteTimeout = 15 * time.Minute
	}
	return o
}

// Reconciler keeps one broker's ACLs equal to the intents; its requests are
// KafkaServerConfig keys.
type Reconciler struct {
	// Client reads from the cache and writes to the API server.
	Client client.Client
	// APIReader reads Secrets and the owned-ACL record, which are not cached.
	APIReader client.Reader
	// Options are the point's settings.
	Options Options
	// Recorder, when set, records an Event for each change a user cares about: ACLs
	// written, the broker lost or back, ACLs left behind on deletion.
	Recorder events.EventRecorder

	store store
	point *Point

	mu      sync.Mutex
	brokers map[types.NamespacedName]*brokerConn
}

// brokerConn is the long-lived state of one broker: its client and what it owns.
type brokerConn struct {
	// clusterID is the ID of the cluster the client reaches.
	clusterID   string
	fingerprint string
	client      *broker.Client
	owned       *storedSet
	failures    int
}

func (r *Reconciler) conn(key types.NamespacedName) *brokerConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.brokers == nil {
		r.brokers = map[types.NamespacedName]*brokerConn{}
	}
	c, ok := r.brokers[key]
	if !ok {
		c = &brokerConn{}
		r.brokers[key] = c
	}
	return c
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.brokers[key]; ok && c.client != nil {
		c.client.Close()
	}
	delete(r.brokers, key)
}

// Close closes every broker client.
func (r *Reconciler) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range r.brokers {
		if c.client != nil {
			c.client.Close()
		}
		delete(r.brokers, k)
	}
}

// +kubebuilder:rbac:groups=k8s.otterize.com,resources=kafkaserverconfigs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=k8s.otterize.com,resources=kafkaserverconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=k8s.otterize.com,resources=kafkaserverconfigs/finalizers,verbs=update
// +kubebuilder:rbac:groups=k8s.otterize.com,resources=clientintents;protectedservices,verbs=get;list;watch
// The ConfigMaps (records, in the operator's namespace) and Secrets (broker credentials,
// in the namespaces the chart's kafkaCredentialNamespaces lists) are granted by Roles in
// those namespaces only, not here: the operator can read no other Secret, the credentials
// operator's CA key included.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one broker's ACLs to the desired set.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ksc v2beta1.KafkaServerConfig
	if err := r.Client.Get(ctx, req.NamespacedName, &ksc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			r.point.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading KafkaServerConfig %s: %w", req, err)
	}
	if !ksc.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &ksc)
	}
	if !controllerutil.ContainsFinalizer(&ksc, Finalizer) {
		patch := client.MergeFrom(ksc.DeepCopy())
		controllerutil.AddFinalizer(&ksc, Finalizer)
		if err := r.Client.Patch(ctx, &ksc, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding the finalizer to %s: %w", req, err)
		}
	}
	wasConnected := !apimeta.IsStatusConditionFalse(ksc.Status.Conditions, ConditionConnected)
	st := r.sync(ctx, &ksc)
	r.point.record(req.NamespacedName, st)
	switch {
	case st.brokerErr != nil && wasConnected:
		reason, detail := brokerFailure(st.brokerErr)
		r.event(&ksc, corev1.EventTypeWarning, reason, "%v%s", st.brokerErr, detail)
	case st.brokerErr == nil && st.configErr == nil && st.apiErr == nil && !wasConnected:
		r.event(&ksc, corev1.EventTypeNormal, "BrokerReachable", "the broker answers again")
	}
	if st.created+st.deleted > 0 {
		r.event(&ksc, corev1.EventTypeNormal, "ACLsUpdated", "created %d and deleted %d ACLs; %d owned", st.created, st.deleted, st.owned)
	}
	if err := r.writeStatus(ctx, &ksc, st); err != nil {
		if apierrors.IsConflict(err) {
			// The config changed under the status write (a label, say, which does not
			// trigger a reconcile): write the status again against the new version.
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return ctrl.Result{}, err
	}
	return r.next(req.NamespacedName, st), nil
}

// next schedules the following reconcile: the resync period when all is well, a growing
// delay while the broker cannot be reached or the config cannot be used (a Secret created
// later is not watched, and is picked up by the retry).
func (r *Reconciler) next(key types.NamespacedName, st syncState) ctrl.Result {
	c := r.conn(key)
	if st.brokerErr == nil && st.configErr == nil && st.apiErr == nil {
		c.failures = 0
		return ctrl.Result{RequeueAfter: r.Options.ResyncPeriod}
	}
	c.failures++
	d := time.Second << min(c.failures-1, 16)
	return ctrl.Result{RequeueAfter: min(d, r.Options.MaxBackoff)}
}

// syncState is the outcome of one sync, for status and for the ClientIntents report.
type syncState struct {
	generation int64
	enforced   bool
	// configErr is an error in the KafkaServerConfig or its Secrets: nothing was touched.
	configErr error
	// apiErr is a failure reading or writing the Kubernetes API (the cache, the owned
	// record); it is retried.
	apiErr error
	// brokerErr is an error talking to the broker.
	brokerErr error
	// inSync is true when the broker holds exactly the desired set.
	inSync                   bool
	desired, owned, foreign  int
	intents                  map[types.NamespacedName]intentsState
	created, deleted, listed int
}

type intentsState struct {
	generation int64
	err        error
}

func (r *Reconciler) sync(ctx context.Context, ksc *v2beta1.KafkaServerConfig) syncState {
	// A broker that accepts connections but does not answer must not hold the worker.
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	logger := log.FromContext(ctx)
	key := client.ObjectKeyFromObject(ksc)
	st := syncState{generation: ksc.Generation, intents: map[types.NamespacedName]intentsState{}}

	if other, err := r.olderTwin(ctx, ksc); err != nil {
		st.configErr = err
		return st
	} else if other != "" {
		st.configErr = fmt.Errorf("KafkaServerConfig %s already describes workload %s; this one is ignored", other, ksc.Spec.Workload.Name)
		return st
	}
	server := acl.ServerOf(ksc)
	intents, err := r.intentsOf(ctx, ksc)
	if err != nil {
		st.apiErr = err
		return st
	}
	result, err := acl.Compile(server, intents)
	if err != nil {
		st.configErr = fmt.Errorf("compiling the ACLs: %w", err)
		return st
	}
	for i := range intents {
		k := client.ObjectKeyFromObject(&intents[i])
		if res, ok := result.Intents[k]; ok {
			st.intents[k] = intentsState{generation: intents[i].Generation, err: res.Err}
		}
	}
	protected, err := r.protected(ctx, ksc)
	if err != nil {
		st.apiErr = err
		return st
	}
	st.enforced = r.Options.Enforcement.Enforces(ksc.Namespace, protected)

	conn := r.conn(key)
	cl, err := r.client(ctx, ksc, conn)
	if err != nil {
		st.configErr = err
		return st
	}
	if conn.owned == nil {
		owned, err := r.store.load(ctx, ksc)
		if errors.As(err, &foreignRecordError{}) {
			st.configErr = err
			return st
		}
		if err != nil {
			st.apiErr = err
			return st
		}
		conn.owned = &owned
	}
	clusterID, err := cl.ClusterID(ctx)
	if err != nil {
		st.brokerErr = err
		st.owned = len(conn.owned.acls)
		return st
	}
	if conn.owned.clusterID != "" && clusterID != "" && conn.owned.clusterID != clusterID {
		// The address now leads to another cluster: what was created on the first one is
		// not this one's to delete, and stays there.
		logger.Info("the broker address leads to another Kafka cluster; ACLs created on the previous one are left there",
			"previous", conn.owned.clusterID, "now", clusterID, "left", len(conn.owned.acls))
		conn.owned.acls = acl.Set{}
	}
	conn.clusterID = clusterID
	owned := conn.owned.acls
	desired := acl.Set{}
	if st.enforced {
		desired = result.Desired(owned)
	}
	st.desired = len(desired)

	onBroker, err := cl.List(ctx)
	st.listed = len(onBroker)
	if err != nil {
		st.brokerErr = err
		st.owned = len(owned)
		return st
	}
	plan := acl.Diff(desired, owned, onBroker)
	st.foreign = plan.Foreign
	if plan.Empty() {
		st.inSync = true
		st.owned = len(plan.Keep)
		// Owned ACLs the broker no longer holds (and no longer wanted) are forgotten; this
		// writes only when the record changes.
		if err := r.saveOwned(ctx, ksc, conn, plan.Keep); err != nil {
			st.apiErr = err
		}
		return st
	}

	// Record the ACLs about to be created before creating them: should the operator stop
	// between the two, the next run still knows they are its own to remove later.
	if len(plan.Create) > 0 {
		pending := plan.Owned(plan.Create, plan.Delete)
		if err := r.saveOwned(ctx, ksc, conn, pending); err != nil {
			st.apiErr = err
			st.owned = len(owned)
			return st
		}
	}
	created, cerr := cl.Create(ctx, plan.Create)
	deleted, derr := cl.Delete(ctx, plan.Delete)
	st.created, st.deleted = len(created), len(deleted)
	gone := acl.NewSet(deleted...)
	var failedDeletes []acl.ACL
	for _, a := range plan.Delete {
		if !gone.Has(a) {
			failedDeletes = append(failedDeletes, a)
		}
	}
	// Every creation that was attempted stays recorded, created or not: a request that
	// failed may still have been applied (a timeout after the broker wrote it), and the
	// next List, which forgets owned ACLs the broker does not hold, is what proves it
	// absent. Dropping it here would leave an ACL on the broker that nobody removes.
	after := plan.Owned(plan.Create, failedDeletes)
	if err := r.saveOwned(ctx, ksc, conn, after); err != nil {
		st.apiErr = err
	}
	st.owned = len(after)
	if err := errors.Join(cerr, derr); err != nil {
		st.brokerErr = err
		return st
	}
	st.inSync = true
	logger.Info("ACLs updated", "created", len(created), "deleted", len(deleted), "owned", len(after), "foreign", plan.Foreign)
	return st
}

func (r *Reconciler) saveOwned(ctx context.Context, ksc *v2beta1.KafkaServerConfig, conn *brokerConn, acls acl.Set) error {
	if conn.owned.exists && conn.owned.acls.Equal(acls) && conn.owned.clusterID == conn.clusterID {
		return nil
	}
	saved, err := r.store.save(ctx, ksc, *conn.owned, acls, conn.clusterID)
	if err != nil {
		// The next reconcile reads the record again rather than trust a stale version.
		conn.owned = nil
		return err
	}
	conn.owned = &saved
	return nil
}

// olderTwin returns the name of an older KafkaServerConfig for the same workload, which
// wins: two configs for one broker would fight over its ACLs.
func (r *Reconciler) olderTwin(ctx context.Context, ksc *v2beta1.KafkaServerConfig) (string, error) {
	var list v2beta1.KafkaServerConfigList
	if err := r.Client.List(ctx, &list, client.InNamespace(ksc.Namespace), client.MatchingFields{indexKafkaWorkload: ksc.Spec.Workload.Name}); err != nil {
		return "", fmt.Errorf("listing KafkaServerConfigs: %w", err)
	}
	for _, o := range list.Items {
		if o.Name == ksc.Name {
			continue
		}
		if o.CreationTimestamp.Before(&ksc.CreationTimestamp) || o.CreationTimestamp.Equal(&ksc.CreationTimestamp) && o.Name < ksc.Name {
			return o.Name, nil
		}
	}
	return "", nil
}

func (r *Reconciler) intentsOf(ctx context.Context, ksc *v2beta1.KafkaServerConfig) ([]v2beta1.ClientIntents, error) {
	var list v2beta1.ClientIntentsList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexKafkaTarget: ksc.Namespace + "/" + ksc.Spec.Workload.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the ClientIntents of %s/%s: %w", ksc.Namespace, ksc.Spec.Workload.Name, err)
	}
	return list.Items, nil
}

func (r *Reconciler) protected(ctx context.Context, ksc *v2beta1.KafkaServerConfig) (bool, error) {
	var list v2beta1.ProtectedServiceList
	if err := r.Client.List(ctx, &list, client.InNamespace(ksc.Namespace)); err != nil {
		return false, fmt.Errorf("listing ProtectedServices: %w", err)
	}
	broker := intent.Server{Ref: intent.Ref{Namespace: ksc.Namespace, Name: ksc.Spec.Workload.Name, Kind: ksc.Spec.Workload.Kind}}
	for _, ps := range list.Items {
		if ps.DeletionTimestamp.IsZero() && intent.Covers(&ps, broker) {
			return true, nil
		}
	}
	return false, nil
}

// client returns the broker's long-lived client, building a new one only when the
// address or the credentials changed.
func (r *Reconciler) client(ctx context.Context, ksc *v2beta1.KafkaServerConfig, conn *brokerConn) (*broker.Client, error) {
	cfg := r.Options.Broker
	cfg.Addr = ksc.Spec.Addr
	h := sha256.New()
	h.Write([]byte(ksc.Spec.Addr + "\x00"))
	if t := ksc.Spec.TLS; t != nil {
		var cert, key, ca []byte
		if t.SecretName != "" {
			data, err := r.secret(ctx, ksc.Namespace, t.SecretName, ksc.Spec.Addr)
			if err != nil {
				return nil, err
			}
			cert, key, ca = data[or(t.CertKey, "cert.pem")], data[or(t.KeyKey, "key.pem")], data[or(t.CAKey, "ca.pem")]
		}
		for _, f := range []struct {
			path string
			into *[]byte
		}{{t.CertFile, &cert}, {t.KeyFile, &key}, {t.RootCAFile, &ca}} {
			if f.path == "" {
				continue
			}
			b, err := r.tlsFile(f.path)
			if err != nil {
				return nil, err
			}
			*f.into = b
		}
		tc, err := broker.TLSConfig(cert, key, ca, t.ServerName)
		if err != nil {
			return nil, fmt.Errorf("TLS of %s/%s: %w", ksc.Namespace, ksc.Name, err)
		}
		cfg.TLS = tc
		for _, b := range [][]byte{[]byte(t.ServerName), cert, key, ca} {
			h.Write(b)
			h.Write([]byte{0})
		}
	}
	if s := ksc.Spec.SASL; s != nil {
		data, err := r.secret(ctx, ksc.Namespace, s.SecretName, ksc.Spec.Addr)
		if err != nil {
			return nil, err
		}
		user, pass := data[or(s.UsernameKey, "username")], data[or(s.PasswordKey, "password")]
		if len(user) == 0 {
			return nil, fmt.Errorf("secret %s/%s has no %q", ksc.Namespace, s.SecretName, or(s.UsernameKey, "username"))
		}
		mech, err := broker.SASLMechanism(string(s.Mechanism), string(user), string(pass))
		if err != nil {
			return nil, err
		}
		cfg.SASL = mech
		for _, b := range [][]byte{[]byte(s.Mechanism), user, pass} {
			h.Write(b)
			h.Write([]byte{0})
		}
	}
	fp := hex.EncodeToString(h.Sum(nil))
	if conn.client != nil && conn.fingerprint == fp {
		return conn.client, nil
	}
	cl, err := broker.New(cfg)
	if err != nil {
		return nil, err
	}
	if conn.client != nil {
		conn.client.Close()
	}
	conn.client, conn.fingerprint = cl, fp
	return cl, nil
}

// secret returns the data of a Secret its owner opted in with CredentialsLabel, for
// sending to addr.
func (r *Reconciler) secret(ctx context.Context, namespace, name, addr string) (map[string][]byte, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	// The metadata first: the data of a Secret its owner did not opt in is never fetched.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.APIReader.Get(ctx, key, meta); err != nil {
		return nil, secretReadError(namespace, name, err)
	}
	if err := credentialsConsent(meta, addr); err != nil {
		return nil, err
	}
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		return nil, secretReadError(namespace, name, err)
	}
	// Again on what was read, in case the label went in between.
	if err := credentialsConsent(&s, addr); err != nil {
		return nil, err
	}
	return s.Data, nil
}

func secretReadError(namespace, name string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("reading Secret %s/%s: the operator may not read Secrets in namespace %s (the chart's kafkaCredentialNamespaces lists the namespaces it may): %w", namespace, name, namespace, err)
	}
	return fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
}

// credentialsConsent checks that the Secret's owner opted it in for reaching a Kafka
// broker, at addr.
func credentialsConsent(s metav1.Object, addr string) error {
	if s.GetLabels()[CredentialsLabel] != "true" {
		return fmt.Errorf("Secret %s/%s is not labelled %s=true: the operator uses only Secrets their owner opted in for reaching a Kafka broker", s.GetNamespace(), s.GetName(), CredentialsLabel)
	}
	if allowed, ok := s.GetAnnotations()[CredentialsAddrsAnnotation]; ok && !slices.Contains(strings.FieldsFunc(allowed, func(r rune) bool { return r == ',' || r == ' ' }), addr) {
		return fmt.Errorf("Secret %s/%s may be sent only to %s (annotation %s), not to %s", s.GetNamespace(), s.GetName(), allowed, CredentialsAddrsAnnotation, addr)
	}
	return nil
}

// tlsFile reads a file a KafkaServerConfig names, which must lie, symbolic links
// resolved, in one of the directories the operator's administrator allowed: a config
// must not make the operator read (and send to a broker address of its choosing) any
// other file the operator can read, such as its ServiceAccount token.
func (r *Reconciler) tlsFile(path string) ([]byte, error) {
	if len(r.Options.TLSDirs) == 0 {
		return nil, fmt.Errorf("TLS file %q: the operator reads no TLS files (started without --kafka-tls-dirs); use tls.secretName", path)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("TLS file %q: not an absolute path", path)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("TLS file %q: %w", path, err)
	}
	for _, dir := range r.Options.TLSDirs {
		d, err := filepath.EvalSymlinks(filepath.Clean(dir))
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && rel != "." {
			b, err := os.ReadFile(real)
			if err != nil {
				return nil, fmt.Errorf("reading TLS file %q: %w", path, err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("TLS file %q is not in a directory the operator allows (--kafka-tls-dirs=%s)", path, strings.Join(r.Options.TLSDirs, ","))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// finalize removes the ACLs the KafkaServerConfig caused, then lets it go. It gives up,
// leaving the ACLs on the broker, when the user forces it or the broker stays unreachable
// past the delete timeout.
func (r *Reconciler) finalize(ctx context.Context, ksc *v2beta1.KafkaServerConfig) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(ksc)
	if !controllerutil.ContainsFinalizer(ksc, Finalizer) {
		return ctrl.Result{}, nil
	}
	logger := log.FromContext(ctx)
	conn := r.conn(key)
	err := r.removeOwned(ctx, ksc, conn)
	if err != nil {
		forced := ksc.Annotations[ForceDeleteAnnotation] == "true"
		expired := time.Since(ksc.DeletionTimestamp.Time) > r.Options.DeleteTimeout
		if !forced && !expired {
			st := syncState{generation: ksc.Generation, brokerErr: err, owned: ownedCount(conn)}
			if werr := r.writeStatus(ctx, ksc, st); werr != nil && !apierrors.IsConflict(werr) && !apierrors.IsNotFound(werr) {
				return ctrl.Result{}, werr
			}
			return r.next(key, st), nil
		}
		logger.Info("giving up removing the ACLs of a deleted KafkaServerConfig; they stay on the broker",
			"owned", ownedCount(conn), "forced", forced, "error", err.Error())
		r.event(ksc, corev1.EventTypeWarning, "ACLsLeftOnBroker", "%d ACLs stay on the broker (forced: %v): %v", ownedCount(conn), forced, err)
	}
	if err := r.store.remove(ctx, ksc, conn.owned); err != nil {
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(ksc.DeepCopy())
	controllerutil.RemoveFinalizer(ksc, Finalizer)
	if err := r.Client.Patch(ctx, ksc, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing the finalizer of %s: %w", key, err)
	}
	r.forget(key)
	r.point.forget(key)
	return ctrl.Result{}, nil
}

func (r *Reconciler) event(ksc *v2beta1.KafkaServerConfig, kind, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ksc, nil, kind, reason, "Reconcile", "%s", enforcement.EventNote(fmt.Sprintf(format, args...)))
	}
}

func ownedCount(c *brokerConn) int {
	if c.owned == nil {
		return 0
	}
	return len(c.owned.acls)
}

func (r *Reconciler) removeOwned(ctx context.Context, ksc *v2beta1.KafkaServerConfig, conn *brokerConn) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if conn.owned == nil {
		owned, err := r.store.load(ctx, ksc)
		if errors.As(err, &foreignRecordError{}) {
			return nil // no record of the operator's: nothing it knows it owns
		}
		if err != nil {
			return err
		}
		conn.owned = &owned
	}
	if len(conn.owned.acls) == 0 {
		return nil
	}
	cl, err := r.client(ctx, ksc, conn)
	if err != nil {
		return err
	}
	clusterID, err := cl.ClusterID(ctx)
	if err != nil {
		return err
	}
	if conn.owned.clusterID != "" && clusterID != "" && conn.owned.clusterID != clusterID {
		return nil // the owned ACLs are on another cluster, which this config no longer reaches
	}
	onBroker, err := cl.List(ctx)
	if err != nil {
		return err
	}
	conn.clusterID = clusterID
	plan := acl.Diff(acl.Set{}, conn.owned.acls, onBroker)
	deleted, err := cl.Delete(ctx, plan.Delete)
	if err != nil {
		gone, left := acl.NewSet(deleted...), acl.Set{}
		for _, a := range plan.Delete {
			if !gone.Has(a) {
				left.Add(a)
			}
		}
		if serr := r.saveOwned(ctx, ksc, conn, left); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	log.FromContext(ctx).Info("removed the ACLs of a deleted KafkaServerConfig", "deleted", len(deleted))
	return nil
}

// writeStatus reports what the broker enforces; it writes only when something changed.
func (r *Reconciler) writeStatus(ctx context.Context, ksc *v2beta1.KafkaServerConfig, st syncState) error {
	old := ksc.Status.DeepCopy()
	setStatus(ksc, st)
	if statusEqual(old, &ksc.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, ksc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // gone: nothing to report on
		}
		return fmt.Errorf("writing the status of %s/%s: %w", ksc.Namespace, ksc.Name, err)
	}
	return nil
}

// setStatus sets the status of ksc from the outcome of one sync: the shared Ready,
// Reconciling and Stalled, and Connected and ACLsInSync, which say why.
func setStatus(ksc *v2beta1.KafkaServerConfig, st syncState) {
	old := ksc.Status.DeepCopy()
	s := &ksc.Status
	s.ObservedGeneration = st.generation
	s.Enforced = st.enforced
	s.DesiredACLs, s.OwnedACLs, s.ForeignACLs = int32(st.desired), int32(st.owned), int32(st.foreign)
	set := func(t string, ok bool, reason, msg string) {
		apimeta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: t, Status: cond(ok), Reason: reason, Message: msg, ObservedGeneration: st.generation})
	}
	deleting := !ksc.DeletionTimestamp.IsZero()
	switch {
	case st.configErr != nil:
		s.LastError = st.configErr.Error()
		set(ConditionACLsInSync, false, ReasonConfigError, "nothing was changed on the broker: "+st.configErr.Error())
		enforcement.SetReadiness(&s.Conditions, enforcement.ReasonFailed, st.configErr.Error(), st.generation)
	case st.apiErr != nil:
		s.LastError = st.apiErr.Error()
		set(ConditionACLsInSync, false, ReasonAPIError, st.apiErr.Error()+"; retrying with backoff")
		enforcement.SetReadiness(&s.Conditions, enforcement.ReasonPending, st.apiErr.Error()+"; retrying with backoff", st.generation)
	case st.brokerErr != nil:
		s.LastError = st.brokerErr.Error()
		reason, detail := brokerFailure(st.brokerErr)
		set(ConditionConnected, false, reason, st.brokerErr.Error()+detail+"; retrying with backoff")
		msg := fmt.Sprintf("the broker could not be brought to the desired ACLs (%d owned)%s; retrying with backoff", st.owned, detail)
		if deleting {
			msg = fmt.Sprintf("waiting for the broker to remove %d owned ACLs before deletion%s; annotate with %s=true to delete now and leave them on the broker", st.owned, detail, ForceDeleteAnnotation)
		}
		set(ConditionACLsInSync, false, reason, msg)
		enforcement.SetReadiness(&s.Conditions, readiness(reason), msg, st.generation)
	default:
		s.LastError = ""
		set(ConditionConnected, true, ReasonConnected, "the broker answered")
		if st.enforced {
			set(ConditionACLsInSync, true, enforcement.ReasonEnforced, fmt.Sprintf("the broker holds the %d desired ACLs (%d created by this operator, %d others left untouched)", st.desired, st.owned, st.foreign))
		} else {
			set(ConditionACLsInSync, true, enforcement.ReasonShadow, fmt.Sprintf("shadow mode: no ACL is written (%d owned, %d others left untouched); add a ProtectedService for %s to enforce", st.owned, st.foreign, ksc.Spec.Workload.Name))
		}
		enforcement.SetReadiness(&s.Conditions, enforcement.ReasonReconciled, "the broker reflects this generation", st.generation)
		if s.LastSyncTime == nil || old.Enforced != st.enforced || st.created+st.deleted > 0 || old.ObservedGeneration != st.generation {
			now := metav1.Now()
			s.LastSyncTime = &now
		}
	}
}

func statusEqual(a, b *v2beta1.KafkaServerConfigStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.Enforced != b.Enforced || a.DesiredACLs != b.DesiredACLs ||
		a.OwnedACLs != b.OwnedACLs || a.ForeignACLs != b.ForeignACLs || a.LastError != b.LastError || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	if (a.LastSyncTime == nil) != (b.LastSyncTime == nil) || a.LastSyncTime != nil && !a.LastSyncTime.Equal(b.LastSyncTime) {
		return false
	}
	for _, c := range a.Conditions {
		d := apimeta.FindStatusCondition(b.Conditions, c.Type)
		if d == nil || d.Status != c.Status || d.Reason != c.Reason || d.Message != c.Message || d.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}

func cond(ok bool) metav1.ConditionStatus {
	if ok {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// readiness is the shared Ready reason of a broker failure: a refusal lasts until someone
// changes the credentials or their rights; anything else may pass on its own.
func readiness(brokerReason string) string {
	if brokerReason == ReasonBrokerRefused {
		return enforcement.ReasonFailed
	}
	return enforcement.ReasonPending
}

// brokerRefusals are the answers of a broker that was reached but would not let the
// operator's credentials in, or not manage ACLs.
var brokerRefusals = []error{
	kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism,
	kerr.ClusterAuthorizationFailed, kerr.SecurityDisabled,
}

// brokerFailure names a broker failure for the status: a broker that answered with a
// refusal is not unreachable, and what fixes it (the credentials, or their rights) is not
// what fixes an address or a network.
func brokerFailure(err error) (reason, detail string) {
	for _, refusal := range brokerRefusals {
		if errors.Is(err, refusal) {
			return ReasonBrokerRefused, " (the broker answered but refused the credentials or their rights: managing ACLs needs a principal allowed to describe, create and delete them, such as a super user)"
		}
	}
	return ReasonBrokerUnreachable, ""
}
