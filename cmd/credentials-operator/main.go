// Command credentials-operator issues workload certificates (built-in CA or SPIRE) into
// the Secrets that pods ask for with credentials-operator.otterize.com/tls-secret-name,
// and renews them (in-cluster config, or --kubeconfig).
package main

import (
	"flag"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/clientlimit"
	"github.com/intentguard/intentguard/internal/credentials"
)

// The credentials operator's permissions, generated into config/rbac-credentials (a role of
// its own, so that only this binary reaches Secrets; the intents operator's markers live
// under internal/). It reads pods and their owners, writes Secrets (only its own are ever
// changed; none is ever deleted), records Events, and rolls workloads on renewal.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch

func main() {
	c := credentials.Defaults()
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		c.Namespace = ns
	}
	flag.StringVar(&c.Backend, "backend", c.Backend, "certificate authority: ca (built-in, key pair in a Secret) or spire")
	flag.StringVar(&c.Namespace, "namespace", c.Namespace, "the operator's namespace, holding the built-in CA Secret (default: $POD_NAMESPACE)")
	flag.StringVar(&c.CASecretName, "ca-secret", c.CASecretName, "name of the built-in CA's Secret; created on first start")
	flag.DurationVar(&c.CALifetime, "ca-lifetime", c.CALifetime, "lifetime of a built-in CA certificate; rotated at --renew-fraction of it")
	flag.StringVar(&c.SPIRESocket, "spire-socket", c.SPIRESocket, "the SPIRE server's admin API socket")
	flag.StringVar(&c.SPIREParentID, "spire-parent-id", "", "parent SPIFFE ID of the entries this operator registers (default spiffe://<trust-domain>/intentguard/credentials-operator)")
	flag.StringVar(&c.ClusterName, "cluster-name", "", "name of this cluster among those sharing a SPIRE server; the default entry ID prefix is intentguard-<cluster-name>")
	flag.StringVar(&c.SPIREEntryIDPrefix, "spire-entry-id-prefix", "", "prefix of the IDs of the SPIRE entries this install creates, and the only entries it lists, changes or deletes (default intentguard-<cluster-name>, or intentguard)")
	flag.StringVar(&c.TrustDomain, "trust-domain", c.TrustDomain, "trust domain of the SPIFFE IDs (SPIRE: the server's)")
	flag.StringVar(&c.SPIFFEIDFormat, "spiffe-id-format", c.SPIFFEIDFormat, "SPIFFE ID of a workload; placeholders {trustDomain} {namespace} {name} {kind}")
	flag.DurationVar(&c.DefaultTTL, "default-cert-ttl", c.DefaultTTL, "certificate lifetime when a pod sets no cert-ttl")
	flag.DurationVar(&c.MinTTL, "min-cert-ttl", c.MinTTL, "shortest cert-ttl accepted")
	flag.DurationVar(&c.MaxTTL, "max-cert-ttl", c.MaxTTL, "longest cert-ttl accepted; a pod asking for more gets no certificate and a Warning Event")
	flag.StringVar(&c.DNS.ClusterDomain, "cluster-domain", c.DNS.ClusterDomain, "the cluster's DNS domain, for the Service names a pod may put in its certificate")
	var allowedDNS string
	flag.StringVar(&allowedDNS, "allowed-dns-names", "", "comma-separated DNS suffixes any pod may ask for in dns-names besides its own namespace's Service names; {namespace} stands for the pod's namespace")
	flag.DurationVar(&c.BundleCheck, "bundle-check-interval", c.BundleCheck, "how often the trust bundle is compared with the Secrets'; a change re-examines every Secret")
	flag.Float64Var(&c.Renewal.Fraction, "renew-fraction", c.Renewal.Fraction, "fraction of a certificate's lifetime after which it is renewed")
	flag.Float64Var(&c.Renewal.Jitter, "renew-jitter", c.Renewal.Jitter, "largest fraction of the lifetime taken off the renewal time at random")
	flag.StringVar(&c.MetricsAddr, "metrics-bind-address", c.MetricsAddr, "address of the Prometheus metrics endpoint; 0 turns it off")
	flag.StringVar(&c.ProbeAddr, "health-probe-bind-address", c.ProbeAddr, "address of the /healthz and /readyz endpoints")
	flag.BoolVar(&c.LeaderElection, "leader-elect", false, "elect a leader so only one replica issues")
	flag.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	flag.IntVar(&c.MaxConcurrentReconciles, "max-concurrent-reconciles", c.MaxConcurrentReconciles, "Secrets issued in parallel")
	limit := clientlimit.Bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	for _, s := range strings.Split(allowedDNS, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.DNS.Allowed = append(c.DNS.Allowed, s)
		}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("credentials-operator")

	ctx := ctrl.SetupSignalHandler()
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading kubeconfig")
		os.Exit(1)
	}
	limit.Apply(cfg)
	mgr, err := credentials.New(ctx, cfg, c)
	if err != nil {
		log.Error(err, "building the credentials operator")
		os.Exit(1)
	}
	log.Info("starting", "backend", c.Backend, "trustDomain", c.TrustDomain, "spiffeIDFormat", c.SPIFFEIDFormat)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "credentials operator stopped")
		os.Exit(1)
	}
}
