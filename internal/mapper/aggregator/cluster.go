package aggregator

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/timeline"
)

// podInfo is what the aggregator keeps of a pod for as long as any of its address
// intervals is remembered, which is after the pod is gone.
type podInfo struct {
	meta        metav1.ObjectMeta
	node        string
	hostNetwork bool
	// ports are the TCP ports its containers declare, which tell the pods on a node's host
	// network apart.
	ports []int32

	mu sync.Mutex
	id *identity.Identity
}

// serviceInfo is what the aggregator keeps of a Service.
type serviceInfo struct {
	namespace, name string
}

// Cluster is the aggregator's view of the cluster over time: which pod or Service held
// each address when, from the pod and Service informers. Safe for concurrent use.
type Cluster struct {
	pods     *timeline.Timeline[*podInfo]
	hosts    *timeline.Timeline[*podInfo]
	services *timeline.Timeline[*serviceInfo]
	// nodes maps node addresses to node names, for host traffic of nodes where no
	// host-network pod runs.
	nodes  *timeline.Timeline[string]
	owners identity.OwnerLookup
	now    func() time.Time
}

// NewCluster returns an empty view; owners follows pods' owners for their identities.
func NewCluster(owners identity.OwnerLookup) *Cluster {
	return &Cluster{
		pods:     timeline.NewExclusive[*podInfo](),
		hosts:    timeline.NewShared[*podInfo](),
		services: timeline.NewExclusive[*serviceInfo](),
		nodes:    timeline.NewExclusive[string](),
		owners:   owners,
		now:      time.Now,
	}
}

// Watch feeds the view from c's pod, Service and Node informers and returns the functions that
// report whether their initial lists are in.
func (cl *Cluster) Watch(ctx context.Context, c cache.Cache) ([]toolscache.InformerSynced, error) {
	var synced []toolscache.InformerSynced
	podInf, err := c.GetInformer(ctx, &corev1.Pod{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("getting the pod informer: %w", err)
	}
	reg, err := podInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { cl.SetPod(asPod(o)) },
		UpdateFunc: func(_, o any) { cl.SetPod(asPod(o)) },
		DeleteFunc: func(o any) { cl.DropPod(asPod(o)) },
	})
	if err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	synced = append(synced, reg.HasSynced)
	svcInf, err := c.GetInformer(ctx, &corev1.Service{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("getting the Service informer: %w", err)
	}
	reg, err = svcInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { cl.SetService(asService(o)) },
		UpdateFunc: func(_, o any) { cl.SetService(asService(o)) },
		DeleteFunc: func(o any) { cl.DropService(asService(o)) },
	})
	if err != nil {
		return nil, fmt.Errorf("watching Services: %w", err)
	}
	synced = append(synced, reg.HasSynced)
	nodeInf, err := c.GetInformer(ctx, &corev1.Node{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("getting the Node informer: %w", err)
	}
	reg, err = nodeInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { cl.SetNode(asNode(o)) },
		UpdateFunc: func(_, o any) { cl.SetNode(asNode(o)) },
		DeleteFunc: func(o any) { cl.DropNode(asNode(o)) },
	})
	if err != nil {
		return nil, fmt.Errorf("watching Nodes: %w", err)
	}
	return append(synced, reg.HasSynced), nil
}

func asNode(o any) *corev1.Node {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	n, _ := o.(*corev1.Node)
	return n
}

// SetNode records a node's internal and external addresses as of now.
func (cl *Cluster) SetNode(n *corev1.Node) {
	if n == nil {
		return
	}
	var addrs []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			addrs = append(addrs, ip)
		}
	}
	cl.nodes.Set(string(n.UID), n.Name, addrs, n.CreationTimestamp.Time, cl.now())
}

// DropNode records that a node is gone.
func (cl *Cluster) DropNode(n *corev1.Node) {
	if n != nil {
		cl.nodes.Release(string(n.UID), cl.now())
	}
}

func asPod(o any) *corev1.Pod {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, _ := o.(*corev1.Pod)
	return p
}

func asService(o any) *corev1.Service {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	s, _ := o.(*corev1.Service)
	return s
}

// SetPod records a pod's addresses as of now. A pod that has finished (Succeeded or
// Failed) has given its address back, though its object stays.
func (cl *Cluster) SetPod(p *corev1.Pod) {
	if p == nil {
		return
	}
	now := cl.now()
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		cl.pods.Release(string(p.UID), now)
		cl.hosts.Release(string(p.UID), now)
		return
	}
	info := &podInfo{
		meta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			Annotations: identityAnnotations(p.Annotations), OwnerReferences: p.OwnerReferences,
		},
		node: p.Spec.NodeName, hostNetwork: p.Spec.HostNetwork,
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Protocol == "" || port.Protocol == corev1.ProtocolTCP {
				info.ports = append(info.ports, port.ContainerPort)
			}
		}
	}
	addrs := podAddrs(p)
	start := p.CreationTimestamp.Time
	if info.hostNetwork {
		cl.hosts.Set(string(p.UID), info, addrs, start, now)
		return
	}
	cl.pods.Set(string(p.UID), info, addrs, start, now)
}

// DropPod records that a pod is gone.
func (cl *Cluster) DropPod(p *corev1.Pod) {
	if p == nil {
		return
	}
	now := cl.now()
	cl.pods.Release(string(p.UID), now)
	cl.hosts.Release(string(p.UID), now)
}

// SetService records a Service's cluster addresses as of now.
func (cl *Cluster) SetService(s *corev1.Service) {
	if s == nil {
		return
	}
	var addrs []netip.Addr
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			addrs = append(addrs, a)
		}
	}
	cl.services.Set(string(s.UID), &serviceInfo{namespace: s.Namespace, name: s.Name}, addrs, s.CreationTimestamp.Time, cl.now())
}

// DropService records that a Service is gone.
func (cl *Cluster) DropService(s *corev1.Service) {
	if s != nil {
		cl.services.Release(string(s.UID), cl.now())
	}
}

// Prune forgets the addresses given back before cutoff.
func (cl *Cluster) Prune(cutoff time.Time) {
	cl.pods.Prune(cutoff)
	cl.hosts.Prune(cutoff)
	cl.services.Prune(cutoff)
	cl.nodes.Prune(cutoff)
}

func podAddrs(p *corev1.Pod) []netip.Addr {
	ips := make([]string, 0, len(p.Status.PodIPs)+1)
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	var out []netip.Addr
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// identityAnnotations keeps only the annotations identity resolution reads: the rest of a
// pod's annotations can be large and are not needed after it is gone.
func identityAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for _, k := range []string{identity.WorkloadNameAnnotation, identity.ServiceNameAnnotation} {
		if v, ok := in[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// identity returns the pod's workload identity, resolved at first use and kept with the
// pod's interval, so that later observations of a pod that is gone still find it.
func (cl *Cluster) identity(ctx context.Context, p *podInfo) (identity.Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.id != nil {
		return *p.id, nil
	}
	id, err := identity.Resolve(ctx, &p.meta, cl.owners)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("resolving the identity of pod %s/%s: %w", p.meta.Namespace, p.meta.Name, err)
	}
	p.id = &id
	return id, nil
}

// peer returns what held addr at t, and the pod ("namespace/name") behind it if any.
// port, when not 0, tells apart the pods on a node's host network by the ports they
// declare. dnsName names an address nobody in the cluster held.
func (cl *Cluster) peer(ctx context.Context, addr netip.Addr, port uint16, t time.Time, dnsName string) (edges.Peer, string, error) {
	if ivs := cl.pods.At(addr, t); len(ivs) > 0 {
		return cl.workload(ctx, ivs[0].Value)
	}
	if ivs := cl.services.At(addr, t); len(ivs) > 0 {
		s := ivs[0].Value
		return edges.Peer{Kind: edges.PeerService, Namespace: s.namespace, Name: s.name}, "", nil
	}
	if ivs := cl.hosts.At(addr, t); len(ivs) > 0 {
		var match []*podInfo
		for _, iv := range ivs {
			if port != 0 && slices.Contains(iv.Value.ports, int32(port)) {
				match = append(match, iv.Value)
			}
		}
		if len(match) == 1 {
			return cl.workload(ctx, match[0])
		}
		return edges.Peer{Kind: edges.PeerNode, Name: ivs[0].Value.node}, "", nil
	}
	if ivs := cl.nodes.At(addr, t); len(ivs) > 0 {
		return edges.Peer{Kind: edges.PeerNode, Name: ivs[0].Value}, "", nil
	}
	name := dnsName
	if name == "" {
		name = addr.Unmap().String()
	}
	return edges.Peer{Kind: edges.PeerExternal, Name: name}, "", nil
}

func (cl *Cluster) workload(ctx context.Context, p *podInfo) (edges.Peer, string, error) {
	id, err := cl.identity(ctx, p)
	if err != nil {
		return edges.Peer{}, "", err
	}
	return edges.Peer{Kind: edges.PeerWorkload, Namespace: id.Namespace, Name: id.Name, WorkloadKind: id.Kind},
		p.meta.Namespace + "/" + p.meta.Name, nil
}

// TrimPod is the pod informer's transform: it keeps only what the aggregator reads, so
// that the cache of a large cluster's pods costs a small fraction of the full objects.
func TrimPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	t := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion,
			CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp,
			Annotations: identityAnnotations(p.Annotations), OwnerReferences: p.OwnerReferences,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	for _, c := range p.Spec.Containers {
		if len(c.Ports) > 0 {
			t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	return t, nil
}

// TrimNode is the Node informer's transform: a node's status lists its images and more,
// of which only the addresses are read.
func TrimNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, CreationTimestamp: n.CreationTimestamp,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}
