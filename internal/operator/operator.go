// Package operator assembles the intents operator: a controller-runtime manager with the
// cache, indexes, reconcilers, probes and metrics it needs.
package operator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/intentguard/intentguard/api"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/point/networkpolicy"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/status"
	"github.com/intentguard/intentguard/internal/webhook"
)

// DefaultLeaderElectionID is the lease name when Config.LeaderElectionID is empty; the
// Helm chart derives one from the release instead, so that two installs never share it.
const DefaultLeaderElectionID = "intents-operator.intentguard.dev"

// Config configures one operator instance.
type Config struct {
	// Enforcement holds the roll-out settings (shadow mode, enforced namespaces).
	Enforcement enforcement.Options
	// MetricsAddr serves Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz; "0" turns them off.
	ProbeAddr string
	// PprofAddr serves the Go profiler; empty turns it off.
	PprofAddr string
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; empty means the pod's own namespace.
	LeaderElectionNamespace string
	// LeaderElectionID names the lease; empty means DefaultLeaderElectionID.
	LeaderElectionID string
	// Webhook serves the conversion and validating webhooks when set.
	Webhook *WebhookConfig
	// InProcess lets several operators run one after another in one process (tests and
	// benchmarks), which controller-runtime's metric-name check would otherwise refuse.
	InProcess bool
	// MaxConcurrentReconciles is the number of parallel reconciles per controller.
	MaxConcurrentReconciles int
	// SyncPeriod is how often the cache forces a full resync; zero keeps the default.
	SyncPeriod time.Duration
	// KafkaACLs turns on the Kafka enforcement point (ACLs on KafkaServerConfig brokers).
	KafkaACLs bool
	// Kafka configures the Kafka enforcement point; its Enforcement is taken from above.
	Kafka kafka.Options
	// KeepKafkaFinalizers leaves the Kafka point's finalizers alone when KafkaACLs is off,
	// for a caller that runs the Kafka point itself; otherwise they are removed at start.
	KeepKafkaFinalizers bool
	// IstioAuthorizationPolicies turns on the Istio enforcement point; the cluster must
	// serve Istio's AuthorizationPolicy CRD.
	IstioAuthorizationPolicies bool
	// Istio configures the Istio enforcement point; its Enforcement is taken from above.
	Istio istio.Options
}

// WebhookConfig is where the webhook server listens and finds its certificate.
type WebhookConfig struct {
	// Host is the address to listen on; empty means every interface.
	Host string
	// Port is the HTTPS port.
	Port int
	// CertDir holds tls.crt and tls.key; the server reloads them when they change.
	CertDir string
	// Certs, when set, makes the operator create and renew the certificate in CertDir
	// itself and set the caBundles; nil means something else (cert-manager) provides it.
	Certs *webhook.CertConfig
}

// New builds a manager running the operator against the cluster cfg points to.
func New(ctx context.Context, cfg *rest.Config, c Config) (ctrl.Manager, error) {
	cacheOpts := informer.CacheOptions()
	networkpolicy.LimitCache(&cacheOpts)
	if c.IstioAuthorizationPolicies {
		istio.LimitCache(&cacheOpts, c.Istio)
	}
	if c.SyncPeriod > 0 {
		cacheOpts.SyncPeriod = &c.SyncPeriod
	}
	scheme := informer.Scheme()
	if err := api.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering the served API versions: %w", err)
	}
	if c.IstioAuthorizationPolicies {
		if err := istio.AddToScheme(scheme); err != nil {
			return nil, err
		}
	}
	leaseID := c.LeaderElectionID
	if leaseID == "" {
		leaseID = DefaultLeaderElectionID
	}
	var webhookServer ctrlwebhook.Server
	var rotator *webhook.CertRotator
	if c.Webhook != nil && c.Webhook.Certs != nil {
		certScheme := runtime.NewScheme()
		for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme} {
			if err := add(certScheme); err != nil {
				return nil, fmt.Errorf("building the certificate client's scheme: %w", err)
			}
		}
		direct, err := client.New(cfg, client.Options{Scheme: certScheme})
		if err != nil {
			return nil, fmt.Errorf("creating the certificate client: %w", err)
		}
		certs := *c.Webhook.Certs
		certs.CertDir = c.Webhook.CertDir
		rotator = webhook.NewCertRotator(direct, certs, ctrl.Log.WithName("webhook-certificate"))
		// The webhook server reads the certificate when it starts: have one first.
		if err := rotator.EnsureWithRetry(ctx, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	if c.Webhook != nil {
		webhookServer = ctrlwebhook.NewServer(ctrlwebhook.Options{Host: c.Webhook.Host, Port: c.Webhook.Port, CertDir: c.Webhook.CertDir})
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		WebhookServer:          webhookServer,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress: c.ProbeAddr,
		PprofBindAddress:       c.PprofAddr,
		LeaderElection:         c.LeaderElection,
		LeaderElectionID:       leaseID,
		// The process ends when the manager stops, so the lease can go at once: in a
		// rolling upgrade the next replica leads without waiting for it to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       c.LeaderElectionNamespace,
		Controller:                    config.Controller{SkipNameValidation: &c.InProcess, MaxConcurrentReconciles: c.MaxConcurrentReconciles},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	var points []enforcement.Point
	if c.KafkaACLs {
		kc := c.Kafka
		kc.Enforcement = c.Enforcement
		point, err := kafka.Setup(ctx, mgr, kc)
		if err != nil {
			return nil, err
		}
		points = append(points, point)
	} else if !c.KeepKafkaFinalizers {
		if err := mgr.Add(kafka.FinalizerRelease(mgr.GetClient(), mgr.GetAPIReader())); err != nil {
			// With the Kafka point off, no controller would ever remove its finalizers:
			// deleting a KafkaServerConfig (or its namespace) would hang.
			return nil, fmt.Errorf("adding the Kafka finalizer release: %w", err)
		}
	}
	reader, err := informer.Start(ctx, mgr, compile.WorkloadLabel)
	if err != nil {
		return nil, err
	}
	policies, err := networkpolicy.Setup(ctx, mgr, reader, c.Enforcement)
	if err != nil {
		return nil, err
	}
	if c.IstioAuthorizationPolicies {
		ic := c.Istio
		ic.Enforcement = c.Enforcement
		point, err := istio.Setup(ctx, mgr, reader, ic)
		if err != nil {
			return nil, err
		}
		points = append(points, point)
	}
	// Status reads what every enforcement point recorded.
	if err := status.Setup(mgr, append([]enforcement.Point{policies}, points...)...); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if c.Webhook != nil {
		if err := webhook.Setup(mgr); err != nil {
			return nil, err
		}
		if rotator != nil {
			if err := mgr.Add(rotator); err != nil {
				return nil, fmt.Errorf("adding the certificate rotator: %w", err)
			}
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return nil, fmt.Errorf("adding webhook readiness check: %w", err)
		}
	}
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("cache not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("adding readiness check: %w", err)
	}
	return mgr, nil
}
