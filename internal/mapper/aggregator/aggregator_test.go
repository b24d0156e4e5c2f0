package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/observation"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

const ns = "shop"

// world is a control plane with an aggregator watching it, served over HTTP as agents
// reach it.
type world struct {
	t     *testing.T
	kube  client.Client
	agg   *Aggregator
	store *edges.Store
	db    string
	srv   *httptest.Server
	cl    *Cluster
	seq   uint64
	boot  time.Time
}

func newWorld(t *testing.T) *world {
	c, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	informers, err := cache.New(c.Config, cache.Options{Scheme: kube.Scheme(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: TrimPod}, &corev1.Node{}: {Transform: TrimNode}}})
	if err != nil {
		t.Fatal(err)
	}
	owners := identity.NewOwners(informers, kube, testr.New(t))
	cl := NewCluster(owners.Lookup)
	synced, err := cl.Watch(ctx, informers)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := informers.Start(ctx); err != nil {
			t.Errorf("informers: %v", err)
		}
	}()
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		t.Fatal("informers did not sync")
	}
	w := &world{t: t, kube: kube, cl: cl, db: filepath.Join(t.TempDir(), "map.db"), boot: time.Now()}
	w.open()
	t.Cleanup(func() { w.close() })
	w.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	return w
}

// open starts an aggregator on the world's database, as a (re)started aggregator does.
func (w *world) open() {
	s, err := edges.Open(w.db)
	if err != nil {
		w.t.Fatal(err)
	}
	w.store = s
	w.agg = New(w.cl, s, testr.New(w.t))
	w.srv = httptest.NewServer(w.agg.Handler())
}

func (w *world) close() {
	if w.srv == nil {
		return
	}
	w.srv.Close()
	if err := w.store.Close(); err != nil {
		w.t.Error(err)
	}
	w.srv = nil
}

func (w *world) create(objs ...client.Object) {
	w.t.Helper()
	for _, o := range objs {
		if err := w.kube.Create(context.Background(), o); err != nil {
			w.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// deployment creates a Deployment and its ReplicaSet (nothing runs controllers here) and
// returns the ReplicaSet, which pods name as their owner.
func (w *world) deployment(name string) *appsv1.ReplicaSet {
	w.t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}
	w.create(d)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-5d8f", OwnerReferences: ownedBy("Deployment", d.Name, d.UID)},
		Spec:       appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	w.create(rs)
	return rs
}

func ownedBy(kind, name string, uid types.UID) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes}}
}

// pod creates a pod of the ReplicaSet and publishes its addresses as a kubelet does, then
// waits until the aggregator has seen them.
func (w *world) pod(rs *appsv1.ReplicaSet, name string, hostNetwork bool, port int32, ips ...string) *corev1.Pod {
	w.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: rs.Spec.Selector.MatchLabels, OwnerReferences: ownedBy("ReplicaSet", rs.Name, rs.UID)},
		Spec: corev1.PodSpec{HostNetwork: hostNetwork, NodeName: "node-1",
			Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
	if port != 0 {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: port}}
	}
	w.create(p)
	w.setIPs(p, ips...)
	return p
}

func (w *world) setIPs(p *corev1.Pod, ips ...string) {
	w.t.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ips[0]
	p.Status.PodIPs = nil
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if err := w.kube.Status().Update(context.Background(), p); err != nil {
		w.t.Fatalf("publishing the addresses of pod %s: %v", p.Name, err)
	}
	tl := w.cl.pods
	if p.Spec.HostNetwork {
		tl = w.cl.hosts
	}
	suite.WaitFor(w.t, "the aggregator to see pod "+p.Name, 10*time.Second, func() (bool, error) {
		for _, iv := range tl.At(netip.MustParseAddr(ips[0]), time.Now()) {
			if iv.Holder == string(p.UID) {
				return true, nil
			}
		}
		return false, nil
	})
}

func (w *world) deletePod(p *corev1.Pod) {
	w.t.Helper()
	if err := w.kube.Delete(context.Background(), p, client.GracePeriodSeconds(0)); err != nil {
		w.t.Fatal(err)
	}
	suite.WaitFor(w.t, "the aggregator to see pod "+p.Name+" go", 10*time.Second, func() (bool, error) {
		for _, iv := range w.cl.pods.At(netip.MustParseAddr(p.Status.PodIP), time.Now()) {
			if iv.Holder == string(p.UID) {
				return false, nil
			}
		}
		return true, nil
	})
}

// send posts a batch as an agent does and returns the aggregator's answer.
func (w *world) send(b observation.Batch) Result {
	w.t.Helper()
	if b.Agent == "" {
		w.seq++
		b.Agent, b.Boot, b.Seq = "node-1", w.boot, w.seq
	}
	body, err := json.Marshal(b)
	if err != nil {
		w.t.Fatal(err)
	}
	resp, err := http.Post(w.srv.URL+BatchPath, "application/json", bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("batch %d: %s", b.Seq, resp.Status)
	}
	var res Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		w.t.Fatal(err)
	}
	return res
}

// edges reads the map as a client of the aggregator does.
func (w *world) edges() []edges.Edge {
	w.t.Helper()
	resp, err := http.Get(w.srv.URL + EdgesPath)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []edges.Edge
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func conn(at time.Time, src, dst string, port uint16) observation.Connection {
	return observation.Connection{Time: at, Node: "node-1", SrcIP: netip.MustParseAddr(src), SrcPort: 40000,
		DstIP: netip.MustParseAddr(dst), DstPort: port, Protocol: observation.ProtocolTCP, Source: observation.SourceSYN}
}

func deploy(name string) edges.Peer {
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: ns, Name: name, WorkloadKind: "Deployment"}
}

// summary renders edges as "client -> server:port [dns] xN" for comparisons.
func summary(es []edges.Edge) []string {
	var out []string
	for _, e := range es {
		s := fmt.Sprintf("%s -> %s:%d", e.Client, e.Server, e.Port)
		for _, n := range e.DNSNames {
			s += " [" + n + "]"
		}
		out = append(out, fmt.Sprintf("%s x%d", s, e.Count))
	}
	return out
}

func wantEdges(t *testing.T, got []edges.Edge, want ...string) {
	t.Helper()
	g := summary(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("edges\n got %q\nwant %q", g, want)
	}
}

func TestAggregatorOnAnAPIServer(t *testing.T) {
	w := newWorld(t)
	web, api, db, exporter, logAgent := w.deployment("web"), w.deployment("api"), w.deployment("db"), w.deployment("node-exporter"), w.deployment("log-agent")
	w.pod(web, "web-1", false, 0, "10.244.0.10", "fd00:244::10")
	w.pod(api, "api-1", false, 8080, "10.244.0.11")
	w.pod(exporter, "node-exporter-1", true, 9100, "192.168.50.1")
	w.pod(logAgent, "log-agent-1", true, 0, "192.168.50.1")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "api"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	w.create(svc)
	suite.WaitFor(t, "the aggregator to see the Service", 10*time.Second, func() (bool, error) {
		return len(w.cl.services.At(netip.MustParseAddr(svc.Spec.ClusterIP), time.Now())) == 1, nil
	})

	t.Run("pods, Services, host network and external hosts", func(t *testing.T) {
		now := time.Now()
		w.send(observation.Batch{
			DNSAnswers: []observation.DNSAnswer{
				{Time: now, ClientIP: netip.MustParseAddr("10.244.0.10"), Name: "api.shop.svc.cluster.local",
					IPs: []netip.Addr{netip.MustParseAddr(svc.Spec.ClusterIP)}, TTL: 30 * time.Second},
				{Time: now, ClientIP: netip.MustParseAddr("fd00:244::10"), Name: "payments.example.com",
					CNAMEs: []string{"edge.example.net"}, IPs: []netip.Addr{netip.MustParseAddr("2001:db8::80")}, TTL: time.Minute},
			},
			Connections: []observation.Connection{
				conn(now, "10.244.0.10", svc.Spec.ClusterIP, 80),
				conn(now.Add(time.Second), "10.244.0.10", svc.Spec.ClusterIP, 80),
				conn(now, "10.244.0.10", "10.244.0.11", 8080),
				conn(now, "fd00:244::10", "2001:db8::80", 443),
				conn(now, "10.244.0.11", "198.51.100.7", 5432),
				conn(now, "10.244.0.10", "192.168.50.1", 9100),
				conn(now, "192.168.50.1", "10.244.0.11", 8080),
			},
		})
		wantEdges(t, w.edges(),
			"Deployment/shop/api -> external/198.51.100.7:5432 x1",
			"Deployment/shop/web -> Deployment/shop/api:8080 x1",
			"Deployment/shop/web -> Deployment/shop/node-exporter:9100 x1",
			"Deployment/shop/web -> external/payments.example.com:443 [payments.example.com] x1",
			"Deployment/shop/web -> service/shop/api:80 [api.shop.svc.cluster.local] x2",
			"node/node-1 -> Deployment/shop/api:8080 x1",
		)
		for _, e := range w.edges() {
			if e.Server == deploy("api") && e.Client == deploy("web") {
				if fmt.Sprint(e.ClientPods, e.ServerPods, e.Agents) != "[shop/web-1] [shop/api-1] [node-1]" {
					t.Errorf("samples: %v %v %v", e.ClientPods, e.ServerPods, e.Agents)
				}
				if !e.FirstSeen.Equal(now) || !e.LastSeen.Equal(now) {
					t.Errorf("seen %v..%v, want %v", e.FirstSeen, e.LastSeen, now)
				}
			}
		}
	})

	// An IP given to a pod of another workload: connections to it before the reuse stay
	// with the old workload even when reported after it.
	t.Run("IP reuse makes no phantom edge", func(t *testing.T) {
		old := w.pod(db, "db-1", false, 5432, "10.244.0.20")
		before := time.Now()
		w.deletePod(old)
		cache := w.deployment("cache")
		w.pod(cache, "cache-1", false, 6379, "10.244.0.20")
		after := time.Now()
		res := w.send(observation.Batch{Connections: []observation.Connection{
			conn(after, "10.244.0.10", "10.244.0.20", 6379),
			conn(before, "10.244.0.10", "10.244.0.20", 5432), // late report of the old pod's call
		}})
		if res.Recorded != 2 || res.Dropped != 0 {
			t.Errorf("result %+v", res)
		}
		var got []string
		for _, e := range w.edges() {
			if e.Client == deploy("web") && (e.Server == deploy("db") || e.Server == deploy("cache")) {
				got = append(got, fmt.Sprintf("%s:%d", e.Server.Name, e.Port))
			}
		}
		if fmt.Sprint(got) != "[cache:6379 db:5432]" {
			t.Errorf("edges from web to the reused address: %v, want [cache:6379 db:5432]", got)
		}
	})

	// A connection from a pod whose address the API server has not shown yet is held
	// back until it has, not recorded as external.
	t.Run("young pod", func(t *testing.T) {
		worker := w.deployment("worker")
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker-1", OwnerReferences: ownedBy("ReplicaSet", worker.Name, worker.UID)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}
		w.create(p)
		done := make(chan Result)
		go func() {
			done <- w.send(observation.Batch{Connections: []observation.Connection{conn(time.Now(), "10.244.0.30", "10.244.0.11", 8080)}})
		}()
		time.Sleep(300 * time.Millisecond) // the batch is in; the address is published after it
		w.setIPs(p, "10.244.0.30")
		<-done
		found := false
		for _, e := range w.edges() {
			found = found || e.Client == deploy("worker") && e.Server == deploy("api")
			if e.Client.Name == "10.244.0.30" {
				t.Errorf("young pod recorded as external: %s", summary([]edges.Edge{e}))
			}
		}
		if !found {
			t.Errorf("no edge worker -> api: %q", summary(w.edges()))
		}
	})

	t.Run("restart loses nothing and counts nothing twice", func(t *testing.T) {
		last := observation.Batch{Agent: "node-2", Boot: time.Now(), Seq: 1,
			Connections: []observation.Connection{conn(time.Now(), "10.244.0.10", "10.244.0.11", 8080)}}
		w.send(last)
		before := w.edges()
		w.close()
		w.open()
		after := w.edges()
		if fmt.Sprint(summary(before)) != fmt.Sprint(summary(after)) {
			t.Errorf("after a restart\n got %q\nwant %q", summary(after), summary(before))
		}
		for i := range after {
			if !after[i].LastSeen.Equal(before[i].LastSeen) || !after[i].FirstSeen.Equal(before[i].FirstSeen) || fmt.Sprint(after[i].Agents) != fmt.Sprint(before[i].Agents) {
				t.Errorf("edge %d changed: %+v, was %+v", i, after[i], before[i])
			}
		}
		if res := w.send(last); !res.Repeat {
			t.Errorf("batch sent again after the restart was recorded again: %+v", res)
		}
		if got := summary(w.edges()); fmt.Sprint(got) != fmt.Sprint(summary(before)) {
			t.Errorf("after the repeat\n got %q\nwant %q", got, summary(before))
		}
	})

	t.Run("a connection between nodes counts once", func(t *testing.T) {
		c := conn(time.Now(), "10.244.0.10", "10.244.0.11", 7000)
		c.SrcPort = 41234
		w.send(observation.Batch{Connections: []observation.Connection{c}})
		c.Node = "node-3"
		w.send(observation.Batch{Agent: "node-3", Boot: time.Now(), Seq: 1, Connections: []observation.Connection{c}})
		found := 0
		for _, e := range w.edges() {
			if e.Port == 7000 {
				found++
				if e.Count != 1 || fmt.Sprint(e.Agents) != "[node-1 node-3]" {
					t.Errorf("edge %s reported by %v", summary([]edges.Edge{e}), e.Agents)
				}
			}
		}
		if found != 1 {
			t.Errorf("%d edges on port 7000, want 1", found)
		}
	})

	// The annotation that names a pod's identity is read as the operators read it, also
	// through the trimmed pod the informer keeps.
	t.Run("identity from the workload-name annotation", func(t *testing.T) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "runner-x7", Annotations: map[string]string{identity.WorkloadNameAnnotation: "batch-runner"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}
		w.create(p)
		w.setIPs(p, "10.244.0.40")
		w.send(observation.Batch{Connections: []observation.Connection{conn(time.Now(), "10.244.0.40", "10.244.0.11", 7002)}})
		want := edges.Peer{Kind: edges.PeerWorkload, Namespace: ns, Name: "batch-runner"}
		found := false
		for _, e := range w.edges() {
			found = found || e.Port == 7002 && e.Client == want && fmt.Sprint(e.ClientPods) == "[shop/runner-x7]"
		}
		if !found {
			t.Errorf("no edge from the annotated identity: %q", summary(w.edges()))
		}
	})

	// Host traffic of a node where no host-network pod runs is the node's.
	t.Run("node addresses", func(t *testing.T) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-9"}}
		w.create(n)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.60.9"}, {Type: corev1.NodeHostName, Address: "node-9"}}
		if err := w.kube.Status().Update(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		suite.WaitFor(t, "the aggregator to see the node's address", 10*time.Second, func() (bool, error) {
			return len(w.cl.nodes.At(netip.MustParseAddr("192.168.60.9"), time.Now())) == 1, nil
		})
		w.send(observation.Batch{Connections: []observation.Connection{conn(time.Now(), "192.168.60.9", "10.244.0.11", 7003)}})
		found := false
		for _, e := range w.edges() {
			found = found || e.Port == 7003 && e.Client == edges.Peer{Kind: edges.PeerNode, Name: "node-9"}
		}
		if !found {
			t.Errorf("no edge from node-9: %q", summary(w.edges()))
		}
	})

	t.Run("batches as the agent sends them", func(t *testing.T) {
		b := observation.Batch{Agent: "node-4", Boot: time.Now(), Seq: 1,
			Connections: []observation.Connection{conn(time.Now(), "10.244.0.10", "10.244.0.11", 7001)}}
		if err := (agent.HTTPSender{URL: w.srv.URL}).Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range w.edges() {
			found = found || e.Port == 7001 && e.Client == deploy("web") && e.Server == deploy("api")
		}
		if !found {
			t.Errorf("no edge from the agent's batch: %q", summary(w.edges()))
		}
	})

	t.Run("observations outside the attributable window are dropped, loopback ones ignored", func(t *testing.T) {
		res := w.send(observation.Batch{Connections: []observation.Connection{
			conn(time.Now().Add(-2*Retention), "10.244.0.10", "10.244.0.11", 8080),
			conn(time.Now().Add(2*MaxSkew), "10.244.0.10", "10.244.0.11", 8080),
			conn(time.Now(), "127.0.0.1", "127.0.0.1", 8080),
			conn(time.Now(), "::1", "::1", 8080),
			conn(time.Now(), "::ffff:127.0.0.1", "10.244.0.11", 8080),
		}})
		if res.Dropped != 2 || res.Ignored != 3 || res.Recorded != 0 {
			t.Errorf("result %+v", res)
		}
	})
}
