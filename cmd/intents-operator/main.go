// Command intents-operator turns ClientIntents into NetworkPolicies (and Kafka ACLs) in the cluster it
// runs against (in-cluster config, or --kubeconfig).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/clientlimit"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/logs"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/webhook"
)

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func main() {
	var c operator.Config
	var enforced, meshConfig string
	flag.StringVar(&c.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	flag.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.BoolVar(&c.LeaderElection, "leader-elect", false, "elect a leader so only one replica reconciles")
	flag.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	flag.StringVar(&c.LeaderElectionID, "leader-election-id", operator.DefaultLeaderElectionID, "name of the leader election lease; two installs in one namespace need different names")
	var wh operator.WebhookConfig
	flag.IntVar(&wh.Port, "webhook-port", 0, "HTTPS port of the conversion and validating webhooks (the chart uses 9443); 0 turns them off")
	flag.StringVar(&wh.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of the webhook's tls.crt and tls.key")
	var certs webhook.CertConfig
	var webhookService, webhookConfigs, conversionCRDs string
	flag.StringVar(&certs.SecretName, "webhook-cert-secret", "", "Secret in --webhook-cert-namespace where the operator keeps the webhook certificate it creates and renews; empty: the certificate in --webhook-cert-dir is provided (cert-manager)")
	flag.StringVar(&certs.Namespace, "webhook-cert-namespace", os.Getenv("POD_NAMESPACE"), "namespace of --webhook-cert-secret and --webhook-service (default: $POD_NAMESPACE)")
	flag.StringVar(&webhookService, "webhook-service", "", "Service the API server calls the webhooks through; its DNS names go in the certificate")
	flag.StringVar(&webhookConfigs, "webhook-configurations", "", "comma-separated ValidatingWebhookConfigurations whose caBundle the operator sets")
	flag.StringVar(&conversionCRDs, "conversion-crds", "clientintents.k8s.otterize.com,protectedservices.k8s.otterize.com", "comma-separated CRDs whose conversion webhook caBundle the operator sets")
	flag.DurationVar(&certs.Validity, "webhook-cert-validity", 365*24*time.Hour, "lifetime of a serving certificate (renewed with a third left; the CA lives ten times as long)")
	flag.DurationVar(&certs.CheckInterval, "webhook-cert-check-interval", time.Hour, "how often the certificate and the caBundles are checked")
	flag.BoolVar(&c.Enforcement.Shadow, "shadow-mode", false, "enforce nothing except ProtectedServices and --enforced-namespaces; report what would be enforced")
	flag.BoolVar(&c.KafkaACLs, "kafka-acls", true, "keep the ACLs of brokers described by KafkaServerConfigs equal to the intents")
	flag.DurationVar(&c.Kafka.ResyncPeriod, "kafka-resync-period", 5*time.Minute, "how often each broker's ACLs are listed again to restore lost ones")
	flag.StringVar(&c.Kafka.RecordNamespace, "kafka-record-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the records of the ACLs the operator created, which tenants must not be able to write (default: $POD_NAMESPACE)")
	var releaseFinalizers bool
	flag.BoolVar(&releaseFinalizers, "release-kafka-finalizers", false, "remove the Kafka finalizer from every KafkaServerConfig and exit, leaving their ACLs on the brokers (the chart's pre-delete hook runs this)")
	var tlsDirs string
	flag.StringVar(&tlsDirs, "kafka-tls-dirs", "", "comma-separated directories the tls.*File fields of KafkaServerConfigs may name files in; empty refuses those fields")
	flag.BoolVar(&c.IstioAuthorizationPolicies, "istio-authorization-policies", false, "write Istio AuthorizationPolicies from the intents (needs Istio's CRDs)")
	flag.StringVar(&c.Istio.TrustDomain, "istio-trust-domain", "", "trust domain of the mesh's identities (default: the trustDomain of istiod's mesh configuration)")
	flag.StringVar(&meshConfig, "istio-mesh-config", istio.DefaultMeshConfig.String(), "namespace/name of istiod's ConfigMap holding the mesh configuration")
	flag.StringVar(&enforced, "enforced-namespaces", "", "comma-separated namespaces enforced even in shadow mode")
	limit := clientlimit.Bind(flag.CommandLine)
	flag.IntVar(&c.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "reconciles run in parallel per controller")
	flag.StringVar(&c.PprofAddr, "pprof-bind-address", "", "address of the Go pprof endpoints; empty turns them off")
	flag.DurationVar(&c.SyncPeriod, "sync-period", 0, "how often every object is reconciled again even without changes (default 10h)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		// The informer caches churn (every pod label written comes back as a new object):
		// collecting at 50% heap growth instead of 100% keeps peak memory at 10,000 pods
		// about a quarter lower for a few percent more CPU (docs/performance.md).
		debug.SetGCPercent(50)
	}
	c.Enforcement.EnforcedNamespaces = splitList(enforced)
	c.Kafka.TLSDirs = splitList(tlsDirs)
	if ns, name, ok := strings.Cut(meshConfig, "/"); ok && ns != "" && name != "" {
		c.Istio.MeshConfig = types.NamespacedName{Namespace: ns, Name: name}
	} else {
		fmt.Fprintln(os.Stderr, "--istio-mesh-config must be namespace/name")
		os.Exit(2)
	}
	if c.KafkaACLs && c.Kafka.RecordNamespace == "" && !releaseFinalizers {
		fmt.Fprintln(os.Stderr, "--kafka-acls needs --kafka-record-namespace (or $POD_NAMESPACE)")
		os.Exit(2)
	}
	if wh.Port != 0 {
		c.Webhook = &wh
		if certs.SecretName != "" {
			if webhookService == "" || certs.Namespace == "" {
				fmt.Fprintln(os.Stderr, "--webhook-cert-secret needs --webhook-service and --webhook-cert-namespace (or $POD_NAMESPACE)")
				os.Exit(2)
			}
			svc := webhookService + "." + certs.Namespace
			certs.Hosts = []string{svc + ".svc", svc + ".svc.cluster.local", svc}
			certs.WebhookConfigurations = splitList(webhookConfigs)
			certs.CRDs = splitList(conversionCRDs)
			wh.Certs = &certs
		}
	}
	ctrl.SetLogger(logs.Lazy(zap.New(zap.UseFlagOptions(&zapOpts))))
	log := ctrl.Log.WithName("intents-operator")

	ctx := ctrl.SetupSignalHandler()
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading kubeconfig")
		os.Exit(1)
	}
	limit.Apply(cfg)
	if releaseFinalizers {
		os.Exit(release(ctx, cfg, log))
	}
	mgr, err := operator.New(ctx, cfg, c)
	if err != nil {
		log.Error(err, "building the operator")
		os.Exit(1)
	}
	log.Info("starting", "shadowMode", c.Enforcement.Shadow, "enforcedNamespaces", c.Enforcement.EnforcedNamespaces)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "operator stopped")
		os.Exit(1)
	}
}

// release removes the Kafka finalizers and returns the exit code: run before the operator
// is uninstalled, so that no KafkaServerConfig waits for it afterwards.
func release(ctx context.Context, cfg *rest.Config, log logr.Logger) int {
	c, err := client.New(cfg, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		log.Error(err, "creating a client")
		return 1
	}
	n, err := kafka.ReleaseFinalizers(ctx, c, c)
	if err != nil {
		log.Error(err, "releasing the finalizers of KafkaServerConfigs", "released", n)
		return 1
	}
	log.Info("released the finalizers of KafkaServerConfigs; their ACLs stay on the brokers", "released", n)
	return 0
}
