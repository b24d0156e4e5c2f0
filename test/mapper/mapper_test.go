// Package mapper tests the network mapper end to end on real traffic: pods in network
// namespaces on a node's bridge, registered on a real API server, an agent capturing in
// the node namespace and an aggregator resolving what it reports.
package mapper

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"golang.org/x/net/dns/dnsmessage"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
	"github.com/intentguard/intentguard/internal/mapper/mapsource"
	"github.com/intentguard/intentguard/internal/netns"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/mapcheck"
	"github.com/intentguard/intentguard/internal/testsupport/netnode"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

const (
	ns      = "shop"
	apiName = "api.shop.svc.cluster.local"
)

func ping(t *testing.T, c net.Conn) {
	t.Helper()
	if err := netnode.Ping(c); err != nil {
		t.Fatal(err)
	}
}

// serveDNS answers A and AAAA queries for apiName with ips, over UDP.
func serveDNS(t *testing.T, pc net.PacketConn, ips []netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		hdr, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true})
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30}
		for _, ip := range ips {
			switch {
			case q.Name.String() != apiName+".":
			case ip.Is4() && q.Type == dnsmessage.TypeA:
				_ = b.AResource(rh, dnsmessage.AResource{A: ip.As4()})
			case ip.Is6() && q.Type == dnsmessage.TypeAAAA:
				_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: ip.As16()})
			}
		}
		msg, err := b.Finish()
		if err != nil {
			t.Errorf("DNS server: %v", err)
			return
		}
		_, _ = pc.WriteTo(msg, from)
	}
}

// lookup asks the DNS server in the client pod's name for apiName's address of one family.
func lookup(t *testing.T, c net.Conn, typ dnsmessage.Type) netip.Addr {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(apiName + "."), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var msg dnsmessage.Message
	if err := msg.Unpack(buf[:n]); err != nil || len(msg.Answers) == 0 {
		t.Fatalf("DNS answer: %v %+v", err, msg)
	}
	switch r := msg.Answers[0].Body.(type) {
	case *dnsmessage.AResource:
		return netip.AddrFrom4(r.A)
	case *dnsmessage.AAAAResource:
		return netip.AddrFrom16(r.AAAA)
	}
	t.Fatalf("unexpected answer %v", msg.Answers[0])
	return netip.Addr{}
}

// register creates a Deployment, its ReplicaSet and a pod with the addresses of a
// namespace pod, as the kubelet would publish them.
func register(t *testing.T, kube client.Client, name string, ips ...netip.Addr) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	yes := true
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app"}}}}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
	if err := kube.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-6c9f",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: tmpl}}
	if err := kube.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-6c9f-x1", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: tmpl.Spec.Containers}}
	if err := kube.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ips[0].String()}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if err := kube.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func workload(name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: ns, Name: name, WorkloadKind: "Deployment"}
}

// TestMapperOnRealTraffic: a connection opened before the agent starts (found by the
// socket scan), new IPv4 and IPv6 connections, one to an address the client looked up
// over DNS, and then the server's address given to a pod of another workload.
func TestMapperOnRealTraffic(t *testing.T) {
	node := netnode.New(t, "10.78.0.0/24", "fd78::/64")
	web, api, dns := node.AddPod(t), node.AddPod(t), node.AddPod(t)
	for _, ip := range []netip.Addr{api.IPv4, api.IPv6} {
		for _, port := range []uint16{8080, 8081, 8082} {
			go netnode.ServeEcho(api.Listen(t, "tcp", netip.AddrPortFrom(ip, port).String()))
		}
	}
	go serveDNS(t, dns.ListenPacket(t, "udp", netip.AddrPortFrom(dns.IPv4, 53).String()), []netip.Addr{api.IPv4, api.IPv6})

	c, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	register(t, kube, "web", web.IPv4, web.IPv6)
	apiPod := register(t, kube, "api", api.IPv4, api.IPv6)
	register(t, kube, "coredns", dns.IPv4, dns.IPv6)

	informers, err := cache.New(c.Config, cache.Options{Scheme: kube.Scheme(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: aggregator.TrimPod}}})
	if err != nil {
		t.Fatal(err)
	}
	cluster := aggregator.NewCluster(identity.NewOwners(informers, kube, testr.New(t)).Lookup)
	synced, err := cluster.Watch(ctx, informers)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		t.Fatal("informers did not sync")
	}
	store, err := edges.Open(filepath.Join(t.TempDir(), "map.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := httptest.NewServer(aggregator.New(cluster, store, testr.New(t)).Handler())
	defer srv.Close()

	// Opened before the agent: only the socket scan can find it.
	old := web.Dial(t, "tcp", netip.AddrPortFrom(api.IPv4, 8080).String())
	ping(t, old)

	var capture *agent.Capture
	if err := netns.Do(node.Path, func() error {
		var err error
		capture, err = agent.OpenCapture()
		return err
	}); err != nil {
		t.Fatalf("opening the capture in the node namespace: %v", err)
	}
	a := &agent.Agent{
		Node: "node-1", Capture: capture,
		Scanner:      agent.Scanner{Proc: "/proc", Node: "node-1"},
		ScanInterval: time.Second, FlushInterval: 500 * time.Millisecond,
		Batcher: agent.NewBatcher("node-1", 10, agent.HTTPSender{URL: srv.URL}),
		Log:     testr.New(t),
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(agentCtx) }()
	defer func() {
		stopAgent()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	time.Sleep(500 * time.Millisecond) // the capture is open; let the first scan run

	ping(t, web.Dial(t, "tcp", netip.AddrPortFrom(api.IPv6, 8080).String()))
	resolver := web.Dial(t, "udp", netip.AddrPortFrom(dns.IPv4, 53).String())
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		ping(t, web.Dial(t, "tcp", netip.AddrPortFrom(lookup(t, resolver, typ), 8081).String()))
	}

	list := func() map[string]edges.Edge {
		resp, err := http.Get(srv.URL + aggregator.EdgesPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var es []edges.Edge
		if err := json.NewDecoder(resp.Body).Decode(&es); err != nil {
			t.Fatal(err)
		}
		out := map[string]edges.Edge{}
		for _, e := range es {
			out[fmt.Sprintf("%s -> %s:%d", e.Client, e.Server, e.Port)] = e
		}
		return out
	}
	want := map[string]struct {
		count uint64
		dns   string
	}{
		"Deployment/shop/web -> Deployment/shop/api:8080": {2, ""}, // the scanned one and the IPv6 SYN
		"Deployment/shop/web -> Deployment/shop/api:8081": {2, apiName},
	}
	check := func() error {
		got := list()
		for k, w := range want {
			e, ok := got[k]
			if !ok {
				return fmt.Errorf("no edge %s in %v", k, keys(got))
			}
			if e.Count != w.count || (w.dns != "" && fmt.Sprint(e.DNSNames) != "["+w.dns+"]") {
				return fmt.Errorf("edge %s: count %d, names %v; want %d, %q", k, e.Count, e.DNSNames, w.count, w.dns)
			}
		}
		return nil
	}
	suite.WaitFor(t, "the map to show the calls", 30*time.Second, func() (bool, error) {
		err := check()
		return err == nil, err
	})

	// The server's addresses go to a pod of another workload: calls after that are the
	// new workload's, and nothing of it is added to the old one.
	if err := kube.Delete(ctx, apiPod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	register(t, kube, "cache", api.IPv4, api.IPv6)
	time.Sleep(time.Second)
	ping(t, web.Dial(t, "tcp", netip.AddrPortFrom(api.IPv4, 8082).String()))
	want["Deployment/shop/web -> Deployment/shop/cache:8082"] = struct {
		count uint64
		dns   string
	}{1, ""}
	suite.WaitFor(t, "the map to show the call to the new workload", 30*time.Second, func() (bool, error) {
		err := check()
		return err == nil, err
	})
	for k := range list() {
		if k == "Deployment/shop/web -> Deployment/shop/api:8082" {
			t.Errorf("phantom edge %s", k)
		}
	}
	exportedAllowExactlyTheObservedCalls(t, c.Config, srv.URL)
}

// exportedAllowExactlyTheObservedCalls exports the aggregator's map as the CLI does and
// holds the ClientIntents, applied to the cluster's objects, to the calls observed:
// each allowed, every other pod denied at the servers they protect.
func exportedAllowExactlyTheObservedCalls(t *testing.T, cfg *rest.Config, aggregatorURL string) {
	t.Helper()
	ctx := context.Background()
	observed, err := mapsource.Load(ctx, aggregatorURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := export.Export(observed, export.Options{})
	if len(res.Intents) == 0 {
		t.Fatalf("nothing exported from %d edges (skipped %v)", len(observed), res.Skipped)
	}
	objects, err := (&input.Live{Config: cfg}).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mapcheck.Check(ctx, objects, res.Intents, observed)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("the exported intents do not allow exactly the observed calls:\n%v", err)
	}
	if rep.Allowed == 0 || rep.Denied == 0 {
		t.Fatalf("checked %d allowed and %d denied pod pairs: nothing to hold the export to", rep.Allowed, rep.Denied)
	}
	t.Logf("exported %d ClientIntents; %d observed pod pairs allowed, %d others denied", len(res.Intents), rep.Allowed, rep.Denied)
}

func keys(m map[string]edges.Edge) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
