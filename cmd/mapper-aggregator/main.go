// Command mapper-aggregator receives the connections and DNS answers the nodes' mapper
// agents see, resolves them to workloads as the cluster was at that moment, and keeps the
// resulting network map on its volume (in-cluster config, or --kubeconfig).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/aggregator"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/mtls"
)

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", ":8080", "address serving agents' batches ("+aggregator.BatchPath+"), /readyz and, unless --read-listen is set, the map ("+aggregator.EdgesPath+")")
	flag.StringVar(&o.readListen, "read-listen", "", "address serving the map ("+aggregator.EdgesPath+") and /readyz, apart from the agents' port so that each can be opened to its own clients; empty serves the map on --listen")
	flag.StringVar(&o.db, "db", "/var/lib/intentguard-mapper/map.db", "the map's database file, on a volume that outlives the pod")
	flag.StringVar(&o.tlsDir, "tls-dir", "", "directory of the aggregator's certificate (cert.pem, key.pem, ca.pem, as the credentials operator writes them): the batch port then serves TLS and admits only the --agent-identities; empty: plain HTTP")
	flag.Func("agent-identities", "comma-separated common names (workload.namespace) of the agents' certificates admitted to the batch port, with --tls-dir", func(v string) error {
		o.agentIdentities = strings.Split(v, ",")
		return nil
	})
	flag.DurationVar(&o.edgeRetention, "edge-retention", aggregator.DefaultEdgeRetention, "how long an edge is kept after it was last seen; 0 keeps edges until the database is deleted")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("mapper-aggregator")
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		log.Error(err, "mapper aggregator stopped")
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	listen, readListen, db, tlsDir string
	agentIdentities                []string
	edgeRetention                  time.Duration
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("mapper-aggregator")
	var batchTLS *tls.Config
	if o.tlsDir != "" {
		if len(o.agentIdentities) == 0 {
			return errors.New("--tls-dir needs --agent-identities: the agents whose certificates are admitted")
		}
		creds, err := mtls.Load(o.tlsDir)
		if err != nil {
			return err
		}
		batchTLS = mtls.ServerConfig(creds, o.agentIdentities)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	informers, err := cache.New(cfg, cache.Options{
		Scheme:           scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Transform: aggregator.TrimPod},
			&corev1.Node{}: {Transform: aggregator.TrimNode},
		},
	})
	if err != nil {
		return fmt.Errorf("creating the informer cache: %w", err)
	}
	api, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating the API client: %w", err)
	}
	cluster := aggregator.NewCluster(identity.NewOwners(informers, api, log.WithName("owners")).Lookup)
	synced, err := cluster.Watch(ctx, informers)
	if err != nil {
		return err
	}
	store, err := edges.Open(o.db)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error(err, "closing the map's database")
		}
	}()
	agg := aggregator.New(cluster, store, log)
	agg.EdgeRetention = o.edgeRetention
	go agg.Run(ctx)
	cacheErr := make(chan error, 1)
	go func() { cacheErr <- informers.Start(ctx) }()

	ready := func(w http.ResponseWriter, _ *http.Request) {
		if !allSynced(synced) {
			http.Error(w, "pods, Services and Nodes not listed yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", ready)
	var servers []*http.Server
	if o.readListen == "" {
		mux.Handle("/", agg.Handler())
	} else {
		mux.Handle("/", agg.BatchHandler())
		read := http.NewServeMux()
		read.HandleFunc("GET /readyz", ready)
		read.Handle("/", agg.EdgesHandler())
		servers = append(servers, &http.Server{Addr: o.readListen, Handler: read, ReadHeaderTimeout: 10 * time.Second})
	}
	servers = append(servers, &http.Server{Addr: o.listen, Handler: gateUntilSynced(mux, synced), ReadHeaderTimeout: 10 * time.Second, TLSConfig: batchTLS})
	srvErr := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			if srv.TLSConfig != nil {
				// The certificate comes from TLSConfig, read again as it is renewed.
				srvErr <- srv.ListenAndServeTLS("", "")
				return
			}
			srvErr <- srv.ListenAndServe()
		}()
	}
	log.Info("serving", "listen", o.listen, "tls", batchTLS != nil, "readListen", o.readListen, "db", o.db, "edges", store.Len(), "edgeRetention", o.edgeRetention.String())
	select {
	case <-ctx.Done():
	case err = <-cacheErr:
		err = fmt.Errorf("running the informers: %w", err)
	case err = <-srvErr:
		err = fmt.Errorf("serving: %w", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shutdown); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			log.Error(serr, "stopping the server", "listen", srv.Addr)
		}
	}
	return err
}

// gateUntilSynced refuses batches until the informers have listed every pod, Service and
// Node: resolved against an empty view, every connection would be recorded as external.
func gateUntilSynced(next http.Handler, synced []toolscache.InformerSynced) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == aggregator.BatchPath && !allSynced(synced) {
			http.Error(w, "pods, Services and Nodes not listed yet; send the batch again", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func allSynced(synced []toolscache.InformerSynced) bool {
	for _, s := range synced {
		if !s() {
			return false
		}
	}
	return true
}
