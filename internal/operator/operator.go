// Package operator assembles the intents operator: a controller-runtime manager with the
// cache, indexes, reconcilers, probes and metrics it needs.
package operator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/controller"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/kafka"
)

// Config configures one operator instance.
type Config struct {
	// Enforcement holds the roll-out settings (shadow mode, enforced namespaces).
	Enforcement controller.Options
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
}

// New builds a manager running the operator against the cluster cfg points to.
func New(ctx context.Context, cfg *rest.Config, c Config) (ctrl.Manager, error) {
	cacheOpts := cluster.CacheOptions()
	if c.SyncPeriod > 0 {
		cacheOpts.SyncPeriod = &c.SyncPeriod
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  cluster.Scheme(),
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:  c.ProbeAddr,
		PprofBindAddress:        c.PprofAddr,
		LeaderElection:          c.LeaderElection,
		LeaderElectionID:        "intents-operator.intentguard.dev",
		LeaderElectionNamespace: c.LeaderElectionNamespace,
		Controller:              config.Controller{SkipNameValidation: &c.InProcess, MaxConcurrentReconciles: c.MaxConcurrentReconciles},
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
	}
	// The ClientIntents status reads every enforcement point's report.
	if err := controller.Setup(ctx, mgr, c.Enforcement, points...); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
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
