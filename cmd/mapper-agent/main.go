// Command mapper-agent is the network mapper's per-node agent: it reports the node's new
// TCP connections, established connections older than itself and DNS answers to the
// mapper aggregator. It runs with the node's network (hostNetwork) and processes
// (hostPID), and needs CAP_NET_RAW to capture and CAP_SYS_PTRACE to tell which network
// namespace a process is in (docs/mapper.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/mtls"
)

func main() {
	node := flag.String("node", os.Getenv("NODE_NAME"), "name of this node (default: $NODE_NAME)")
	aggregator := flag.String("aggregator-url", "http://mapper-aggregator:8080", "base URL of the mapper aggregator")
	proc := flag.String("proc", "/proc", "procfs mount showing the node's processes")
	scanInterval := flag.Duration("scan-interval", time.Minute, "how often established sockets are read, for connections opened before the agent started")
	flushInterval := flag.Duration("flush-interval", 10*time.Second, "how often observations are sent")
	maxPending := flag.Int("max-pending-batches", 60, "batches kept while the aggregator is unreachable; older ones are dropped")
	tlsDir := flag.String("tls-dir", "", "directory of the agent's certificate (cert.pem, key.pem, ca.pem, as the credentials operator writes them) for mutual TLS with an https aggregator URL; empty: plain HTTP")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	log := zap.New(zap.UseFlagOptions(&zapOpts))
	if *node == "" {
		fmt.Fprintln(os.Stderr, "mapper-agent: --node or $NODE_NAME is required")
		os.Exit(2)
	}
	capture, err := agent.OpenCapture()
	if err != nil {
		log.Error(err, "starting capture")
		os.Exit(1)
	}
	sender := agent.HTTPSender{URL: *aggregator}
	if *tlsDir != "" {
		client, err := tlsClient(*tlsDir, *aggregator)
		if err != nil {
			log.Error(err, "setting up mutual TLS with the aggregator")
			os.Exit(2)
		}
		sender.Client = client
	}
	a := &agent.Agent{
		Node:          *node,
		Capture:       capture,
		Scanner:       agent.Scanner{Proc: *proc, Node: *node},
		ScanInterval:  *scanInterval,
		Batcher:       agent.NewBatcher(*node, *maxPending, sender),
		FlushInterval: *flushInterval,
		Log:           log,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("mapper agent started", "node", *node, "aggregator", *aggregator)
	if err := a.Run(ctx); err != nil {
		log.Error(err, "mapper agent stopped")
		os.Exit(1)
	}
}

// tlsClient is an HTTP client presenting the agent's certificate in dir to the aggregator
// at rawURL, which must be https, and verifying the aggregator's certificate for its host.
func tlsClient(dir, rawURL string) (*http.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("--tls-dir needs an https --aggregator-url, not %q", rawURL)
	}
	creds, err := mtls.Load(dir)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: mtls.ClientConfig(creds, u.Hostname())}}, nil
}
