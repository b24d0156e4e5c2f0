package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	wq "k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/credentials/ca"
	"github.com/intentguard/intentguard/internal/credentials/spire"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
)

// Pod indexes registered on the cache.
const (
	// IndexSecretName maps pods to the Secret their annotations ask for.
	IndexSecretName = "credentials.secretName"
	// IndexHasSecret maps pods that ask for a Secret to "true".
	IndexHasSecret = "credentials.hasSecret"
)

// Backend names.
const (
	BackendCA    = "ca"
	BackendSPIRE = "spire"
)

// Config configures one credentials operator.
type Config struct {
	Options
	// Backend is BackendCA (default) or BackendSPIRE.
	Backend string
	// Namespace is the operator's own namespace, where the built-in CA Secret lives.
	Namespace string
	// CASecretName names the built-in CA's Secret.
	CASecretName string
	// CALifetime is the lifetime of a built-in CA certificate; it is rotated at
	// Options.Renewal.Fraction of it.
	CALifetime time.Duration
	// SPIRESocket is the SPIRE server's admin socket.
	SPIRESocket string
	// SPIREParentID is the parent of the entries this operator registers (and the only
	// entries it ever changes).
	SPIREParentID string
	// ClusterName names this install among those sharing a SPIRE server; it makes the
	// default entry ID prefix.
	ClusterName string
	// SPIREEntryIDPrefix marks the entries this install owns (default: from ClusterName).
	SPIREEntryIDPrefix string

	MetricsAddr, ProbeAddr  string
	LeaderElection          bool
	LeaderElectionNamespace string
	// InProcess lets several operators run one after another in one process (tests).
	InProcess               bool
	MaxConcurrentReconciles int
}

// Defaults returns the settings the binary starts with.
func Defaults() Config {
	return Config{
		Options: Options{
			TrustDomain:    "intentguard.local",
			SPIFFEIDFormat: DefaultSPIFFEIDFormat,
			Organization:   principal.Organization,
			DefaultTTL:     30 * 24 * time.Hour,
			MinTTL:         time.Minute,
			MaxTTL:         90 * 24 * time.Hour,
			DNS:            DNSPolicy{ClusterDomain: DefaultClusterDomain},
			BundleCheck:    10 * time.Second,
			Renewal:        pki.Renewal{Fraction: 2.0 / 3, Jitter: 0.05},
		},
		Backend:                 BackendCA,
		Namespace:               "intentguard-system",
		CASecretName:            "intentguard-credentials-ca",
		CALifetime:              365 * 24 * time.Hour,
		SPIRESocket:             "/run/spire/server-sockets/api.sock",
		MetricsAddr:             ":8080",
		ProbeAddr:               ":8081",
		MaxConcurrentReconciles: 4,
	}
}

func (c Config) validate() error {
	var errs []error
	if err := c.Renewal.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.DefaultTTL < c.MinTTL {
		errs = append(errs, fmt.Errorf("default TTL %s is below the minimum TTL %s", c.DefaultTTL, c.MinTTL))
	}
	if c.MaxTTL < c.DefaultTTL {
		errs = append(errs, fmt.Errorf("maximum TTL %s is below the default TTL %s", c.MaxTTL, c.DefaultTTL))
	}
	if c.BundleCheck <= 0 {
		errs = append(errs, fmt.Errorf("trust bundle check interval %s is not positive", c.BundleCheck))
	}
	if err := c.DNS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if bad := validation.IsDNS1123Label(c.entryIDPrefix()); len(bad) > 0 {
		errs = append(errs, fmt.Errorf("SPIRE entry ID prefix %q (set or made from the cluster name): %s", c.entryIDPrefix(), strings.Join(bad, "; ")))
	}
	if _, err := SPIFFEID(c.SPIFFEIDFormat, c.TrustDomain, identityExample); err != nil {
		errs = append(errs, fmt.Errorf("SPIFFE ID format: %w", err))
	}
	return errors.Join(errs...)
}

// CacheOptions keeps the cache small: pods reduced to what identities and entries need,
// and only this operator's Secrets.
func CacheOptions() cache.Options {
	slimPod := func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil
		}
		meta := p.ObjectMeta
		meta.ManagedFields = nil
		return &corev1.Pod{
			TypeMeta:   p.TypeMeta,
			ObjectMeta: meta,
			Spec:       corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName},
			Status:     corev1.PodStatus{Phase: p.Status.Phase},
		}, nil
	}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:    {Transform: slimPod},
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{ownership.Label: ownership.CredentialsOperator})},
		},
	}
}

// Scheme returns the scheme the credentials operator reads with: the built-in types only
// (owners of other kinds are read as metadata).
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("building scheme: %v", err))
	}
	return s
}

// New builds a manager running the credentials operator against the cluster cfg points to.
func New(ctx context.Context, cfg *rest.Config, c Config) (ctrl.Manager, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Cache:                   CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:  c.ProbeAddr,
		LeaderElection:          c.LeaderElection,
		LeaderElectionID:        "credentials-operator.intentguard.dev",
		LeaderElectionNamespace: c.LeaderElectionNamespace,
		Controller:              config.Controller{SkipNameValidation: &c.InProcess, MaxConcurrentReconciles: c.MaxConcurrentReconciles},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	issuer, registrar, err := newBackend(ctx, mgr, c)
	if err != nil {
		return nil, err
	}
	if err := Setup(ctx, mgr, issuer, registrar, c.Options); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("cache not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("adding readiness check: %w", err)
	}
	return mgr, nil
}

func newBackend(ctx context.Context, mgr ctrl.Manager, c Config) (backend.Issuer, backend.Registrar, error) {
	logger := ctrl.Log.WithName("credentials-operator")
	switch c.Backend {
	case BackendCA, "":
		// Read and written directly (not through the cache, which holds no Secret yet and
		// only labelled ones later), before the manager starts.
		direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return nil, nil, fmt.Errorf("creating client: %w", err)
		}
		authority, err := ca.Load(ctx, direct, ca.Config{
			Namespace: c.Namespace, SecretName: c.CASecretName, Organization: c.Organization,
			Lifetime: c.CALifetime, RotateAfter: c.Renewal.Fraction,
			Labels: map[string]string{ownership.Label: ownership.CredentialsOperator},
			Log:    logger.WithName("ca"),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("loading the built-in CA: %w", err)
		}
		if err := mgr.Add(authority); err != nil {
			return nil, nil, fmt.Errorf("adding CA rotation: %w", err)
		}
		return authority, nil, nil
	case BackendSPIRE:
		parent := c.SPIREParentID
		if parent == "" {
			parent = "spiffe://" + c.TrustDomain + "/intentguard/credentials-operator"
		}
		u, err := url.Parse(parent)
		if err != nil {
			return nil, nil, fmt.Errorf("SPIRE parent ID %q: %w", parent, err)
		}
		b, err := spire.Dial(spire.Config{SocketPath: c.SPIRESocket, ParentID: u, EntryIDPrefix: c.entryIDPrefix(), Log: logger.WithName("spire")})
		if err != nil {
			return nil, nil, err
		}
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			return b.Close()
		})); err != nil {
			return nil, nil, err
		}
		return b, b, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q (want %s or %s)", c.Backend, BackendCA, BackendSPIRE)
}

// entryIDPrefix is the configured prefix, else intentguard-<cluster name>, else intentguard.
func (c Config) entryIDPrefix() string {
	switch {
	case c.SPIREEntryIDPrefix != "":
		return c.SPIREEntryIDPrefix
	case c.ClusterName != "":
		return "intentguard-" + c.ClusterName
	}
	return "intentguard"
}

// Setup registers the indexes and the controllers with the manager. registrar may be nil.
func Setup(ctx context.Context, mgr ctrl.Manager, issuer backend.Issuer, registrar backend.Registrar, opts Options) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &corev1.Pod{}, IndexSecretName, func(o client.Object) []string {
		if n := SecretNameOf(o.GetAnnotations()); n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by Secret name: %w", err)
	}
	if err := idx.IndexField(ctx, &corev1.Pod{}, IndexHasSecret, func(o client.Object) []string {
		if SecretNameOf(o.GetAnnotations()) != "" {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods asking for credentials: %w", err)
	}

	owners := identity.NewOwners(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetLogger().WithName("owners"))
	secrets := &SecretReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Issuer: issuer,
		Recorder: mgr.GetEventRecorder("credentials-operator"), Options: opts, Owners: owners,
	}
	bundleChanged := make(chan event.GenericEvent, 1024)
	if err := mgr.Add(&bundleWatch{client: mgr.GetClient(), issuer: issuer, every: opts.BundleCheck, out: bundleChanged}); err != nil {
		return fmt.Errorf("adding the trust bundle watch: %w", err)
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("credentials-secrets").
		Watches(&corev1.Pod{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue) { enqueueSecretOf(q, e.Object) },
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue) {
				enqueueSecretOf(q, e.ObjectOld)
				enqueueSecretOf(q, e.ObjectNew)
			},
			DeleteFunc:  func(_ context.Context, e event.DeleteEvent, q workqueue) { enqueueSecretOf(q, e.Object) },
			GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue) { enqueueSecretOf(q, e.Object) },
		}, builder.WithPredicates(podChanged)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(secretAndItsCertificate)).
		WatchesRawSource(source.Channel(bundleChanged, handler.Funcs{
			GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue) { enqueueSecretOf(q, e.Object) },
		})).
		Complete(secrets)
	if err != nil {
		return fmt.Errorf("setting up the Secret controller: %w", err)
	}
	if registrar == nil {
		return nil
	}
	entries := &EntryReconciler{Client: mgr.GetClient(), Registrar: registrar, Options: opts, Owners: owners}
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &corev1.Pod{}} // a first sync even with no pods
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "all"}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("credentials-entries").
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if SecretNameOf(o.GetAnnotations()) == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "all"}}}
		}), builder.WithPredicates(podChanged)).
		WatchesRawSource(source.Channel(start, all)).
		Complete(entries)
	if err != nil {
		return fmt.Errorf("setting up the registry entry controller: %w", err)
	}
	return nil
}

type workqueue = wq.TypedRateLimitingInterface[reconcile.Request]

// secretAndItsCertificate maps one of this operator's Secrets to itself and, for a
// generated password Secret (<name>-password), to the keystore Secret it protects, so
// that a deleted password is replaced and the keystore rewritten with the new one.
func secretAndItsCertificate(_ context.Context, o client.Object) []reconcile.Request {
	out := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
	if name, ok := strings.CutSuffix(o.GetName(), "-password"); ok {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
	}
	return out
}

func enqueueSecretOf(q workqueue, o client.Object) {
	if o == nil {
		return
	}
	if n := SecretNameOf(o.GetAnnotations()); n != "" {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: n}})
	}
}

// podChanged passes pod events that can change what is issued: creation, deletion,
// and updates of annotations, owners, service account, phase or deletion.
var podChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
		if SecretNameOf(o.Annotations) == "" && SecretNameOf(n.Annotations) == "" {
			return false
		}
		return !reflect.DeepEqual(o.Annotations, n.Annotations) ||
			!reflect.DeepEqual(o.OwnerReferences, n.OwnerReferences) ||
			o.Spec.ServiceAccountName != n.Spec.ServiceAccountName ||
			o.Status.Phase != n.Status.Phase ||
			o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
	},
}

func schemaOf(ref *metav1.OwnerReference) schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
}

// identityExample checks the SPIFFE ID format at start.
var identityExample = identity.Identity{Namespace: "ns", Name: "name", Kind: "Deployment"}
