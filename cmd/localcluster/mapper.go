package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
	"github.com/intentguard/intentguard/internal/mapper/mapsource"
	"github.com/intentguard/intentguard/internal/mapper/mapview"
	"github.com/intentguard/intentguard/internal/netns"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/mapcheck"
	"github.com/intentguard/intentguard/internal/testsupport/netnode"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// demoNode is the node the tutorial's pods run on in the mapper demo.
const demoNode = "node-1"

func demoMapperCommand() *cobra.Command {
	var cli string
	cmd := &cobra.Command{
		Use:   "demo-mapper",
		Short: "The network mapper on the tutorial: pods in network namespaces, real traffic, the map and its ClientIntents (needs root)",
		Long: `demo-mapper runs the network-policy tutorial's pods in Linux network namespaces on a
bridge (a small node), registers them with their addresses on a local control plane,
runs the mapper's agent capturing on that node and its aggregator, makes the tutorial's
calls (client to the server, through its Service's address and to its pod; client-other
calls nobody), and then prints the map and the ClientIntents exported from it with the
intentguard CLI, and checks that those intents, applied, allow exactly the observed
calls.

Creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
Everything it creates is removed when it ends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demoMapper(cmd.Context(), cli)
		},
	}
	cmd.Flags().StringVar(&cli, "intentguard", "bin/intentguard", "the intentguard CLI binary to show the map with")
	return cmd
}

// programT gives netnode what it needs of a test in a program: cleanups run when the
// demo ends, and a failure ends the demo.
type programT struct{ cleanups []func() }

// failure is what a programT's Fatal panics with, for demoMapper to recover.
type failure struct{ err error }

func (p *programT) Helper()          {}
func (p *programT) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }
func (p *programT) Fatal(args ...any) {
	panic(failure{errors.New(fmt.Sprint(args...))})
}
func (p *programT) Fatalf(format string, args ...any) { panic(failure{fmt.Errorf(format, args...)}) }
func (p *programT) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (p *programT) Logf(string, ...any)               {}
func (p *programT) Skipf(format string, args ...any) {
	p.Fatalf(format+" (the mapper demo needs root)", args...)
}

// close runs the cleanups, the latest first.
func (p *programT) close() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
}

func demoMapper(ctx context.Context, cli string) (err error) {
	if _, err := os.Stat(cli); err != nil {
		return fmt.Errorf("the intentguard CLI (go build -o %s ./cmd/intentguard): %w", cli, err)
	}
	t := &programT{}
	defer t.close()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	node := netnode.New(t, "10.81.0.0/24", "fd81::/64")

	fmt.Println("starting etcd and kube-apiserver, and kube-controller-manager's Deployment and ReplicaSet controllers ...")
	lc, err := controlplane.Start(ctx, controlplane.Options{Controllers: []string{"deployment", "replicaset"}})
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = lc.Stop() })
	c, err := client.New(lc.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	if err := tutorial.Create(ctx, c); err != nil {
		return err
	}
	pods, err := placePods(ctx, t, c, node)
	if err != nil {
		return err
	}
	server := pods["server"]
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: tutorial.Namespace, Name: "server"}, &svc); err != nil {
		return fmt.Errorf("reading the server's Service: %w", err)
	}
	clusterIP := netip.MustParseAddr(svc.Spec.ClusterIP)
	// No kube-proxy here: the server's pod holds the Service's address itself, and the
	// clients route it to the bridge, so a call to the Service reaches the server as
	// kube-proxy's rewrite would, and the agent sees it addressed to the Service.
	ip(t, "-n", server.Name, "addr", "add", clusterIP.String()+"/32", "dev", "eth0")
	for _, name := range []string{"client", "client-other"} {
		ip(t, "-n", pods[name].Name, "route", "add", clusterIP.String()+"/32", "dev", "eth0")
	}
	go netnode.ServeEcho(server.Listen(t, "tcp", ":80"))

	url, err := startAggregator(ctx, t, lc)
	if err != nil {
		return err
	}
	if err := startAgent(ctx, t, node, url); err != nil {
		return err
	}
	fmt.Printf("agent capturing on node %s, aggregator at %s\n", demoNode, url)

	calls := []struct {
		from, what string
		to         netip.AddrPort
		n          int
	}{
		{"client", "the Service server", netip.AddrPortFrom(clusterIP, 80), 3},
		{"client", "the server's pod, over IPv6", netip.AddrPortFrom(server.IPv6, 80), 2},
	}
	for _, call := range calls {
		for range call.n {
			conn := pods[call.from].Dial(t, "tcp", call.to.String())
			if err := netnode.Ping(conn); err != nil {
				return fmt.Errorf("%s calling %s: %w", call.from, call.to, err)
			}
			_ = conn.Close()
		}
		fmt.Printf("%s called %s (%s) %d times\n", call.from, call.what, call.to, call.n)
	}
	fmt.Println("client-other calls nobody")
	observed, err := waitForMap(ctx, url, 2)
	if err != nil {
		return err
	}

	// The agent also scans the sockets of this machine's own processes, which no pod
	// holds: the tutorial's namespace is what the demo is about.
	fmt.Println()
	if err := runCLI(ctx, cli, "map", "list", "--map", url, "-n", tutorial.Namespace); err != nil {
		return err
	}
	fmt.Println()
	if err := runCLI(ctx, cli, "map", "export", "--map", url, "-n", tutorial.Namespace); err != nil {
		return err
	}
	// What the operator would compile from that export, over the cluster's objects,
	// evaluated independently: the observed calls allowed, any other denied.
	objects, err := (&input.Live{Config: lc.Config}).Read(ctx)
	if err != nil {
		return err
	}
	observed = mapview.Filter{Namespace: tutorial.Namespace}.Apply(observed)
	rep, err := mapcheck.Check(ctx, objects, export.Export(observed, export.Options{}).Intents, observed)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("the exported intents do not allow exactly the observed calls: %w", err)
	}
	fmt.Printf("\napplied, these ClientIntents allow exactly the observed calls (cyclonus on the NetworkPolicies the operator would write):\n  pod pairs allowed: %d, denied: %d\n", rep.Allowed, rep.Denied)
	return nil
}

// placePods gives each tutorial pod a network namespace on the node and publishes its
// addresses, as a scheduler and a kubelet would, and returns the namespaces by workload.
func placePods(ctx context.Context, t *programT, c client.Client, node *netnode.Node) (map[string]*netnode.Pod, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(tutorial.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the tutorial's pods: %w", err)
	}
	out := map[string]*netnode.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		app := p.Labels["app"]
		if _, dup := out[app]; dup || app == "" {
			continue
		}
		ns := node.AddPod(t)
		out[app] = ns
		binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
			Target: corev1.ObjectReference{Kind: "Node", Name: demoNode}}
		if err := c.SubResource("binding").Create(ctx, p, binding); err != nil {
			return nil, fmt.Errorf("binding pod %s to %s: %w", p.Name, demoNode, err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return nil, fmt.Errorf("reading pod %s: %w", p.Name, err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ns.IPv4.String()
		p.Status.PodIPs = []corev1.PodIP{{IP: ns.IPv4.String()}, {IP: ns.IPv6.String()}}
		if err := c.Status().Update(ctx, p); err != nil {
			return nil, fmt.Errorf("publishing pod %s's addresses: %w", p.Name, err)
		}
		fmt.Printf("pod %s (%s) runs in network namespace %s at %s and %s\n", p.Name, app, ns.Name, ns.IPv4, ns.IPv6)
	}
	for _, app := range []string{"server", "client", "client-other"} {
		if out[app] == nil {
			return nil, fmt.Errorf("no pod of %s", app)
		}
	}
	return out, nil
}

// startAggregator runs the aggregator on a loopback port until the demo ends, and
// returns its URL.
func startAggregator(ctx context.Context, t *programT, lc *controlplane.Cluster) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	informers, err := cache.New(lc.Config, cache.Options{Scheme: informer.Scheme(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: aggregator.TrimPod}, &corev1.Node{}: {Transform: aggregator.TrimNode}}})
	if err != nil {
		return "", fmt.Errorf("creating the aggregator's informers: %w", err)
	}
	api, err := client.New(lc.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		return "", fmt.Errorf("creating client: %w", err)
	}
	log := ctrl.Log.WithName("mapper-aggregator")
	cluster := aggregator.NewCluster(identity.NewOwners(informers, api, log).Lookup)
	synced, err := cluster.Watch(ctx, informers)
	if err != nil {
		return "", err
	}
	go func() { _ = informers.Start(ctx) }()
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return "", fmt.Errorf("the aggregator's informers did not sync")
	}
	dir, err := os.MkdirTemp("", "intentguard-mapper-demo-")
	if err != nil {
		return "", fmt.Errorf("creating the map's directory: %w", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	store, err := edges.Open(filepath.Join(dir, "map.db"))
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = store.Close() })
	agg := aggregator.New(cluster, store, log)
	go agg.Run(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening for the aggregator: %w", err)
	}
	srv := &http.Server{Handler: agg.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// startAgent runs the agent, capturing in the node's namespace, until the demo ends.
func startAgent(ctx context.Context, t *programT, node *netnode.Node, url string) error {
	var capture *agent.Capture
	if err := netns.Do(node.Path, func() error {
		var err error
		capture, err = agent.OpenCapture()
		return err
	}); err != nil {
		return fmt.Errorf("opening the capture in the node's namespace: %w", err)
	}
	a := &agent.Agent{
		Node: demoNode, Capture: capture,
		Scanner:      agent.Scanner{Proc: "/proc", Node: demoNode},
		ScanInterval: 5 * time.Second, FlushInterval: 500 * time.Millisecond,
		Batcher: agent.NewBatcher(demoNode, 10, agent.HTTPSender{URL: url}),
		Log:     logr.Discard(),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	time.Sleep(500 * time.Millisecond) // the capture is open; let the first scan run
	return nil
}

// waitForMap waits until the aggregator's map holds n edges of the tutorial's
// namespace, and returns those.
func waitForMap(ctx context.Context, url string, n int) ([]edges.Edge, error) {
	var es []edges.Edge
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		all, err := mapsource.Load(ctx, url, nil)
		es = mapview.Filter{Namespace: tutorial.Namespace}.Apply(all)
		return err == nil && len(es) >= n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %d edges on the map (it holds %d): %w", n, len(es), err)
	}
	return es, nil
}

func ip(t *programT, args ...string) {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// runCLI shows an intentguard command line and runs it.
func runCLI(ctx context.Context, cli string, args ...string) error {
	fmt.Println("$ intentguard " + strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("intentguard %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
