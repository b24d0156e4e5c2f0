package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
	"github.com/intentguard/intentguard/internal/tutorial"
)

// templateHash stands for the pod-template-hash the Deployment controller would compute.
const templateHash = "5d4f8b"

// workload is one generated Deployment.
type workload struct {
	ns, name string
}

func (w workload) ref() intent.Ref { return intent.Ref{Namespace: w.ns, Name: w.name} }

// synthetic is a seeded, generated cluster: workloads spread over namespaces and a random
// graph of declared calls between them.
type synthetic struct {
	namespaces []string
	workloads  []workload
	// calls maps a client index to the server indexes it calls.
	calls map[int][]int
	pods  int
}

func generate(seed uint64, namespaces, workloads, edges, podsPerWorkload int) *synthetic {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &synthetic{calls: map[int][]int{}, pods: podsPerWorkload}
	for i := 0; i < namespaces; i++ {
		s.namespaces = append(s.namespaces, fmt.Sprintf("bench-%d", i))
	}
	for i := 0; i < workloads; i++ {
		s.workloads = append(s.workloads, workload{ns: s.namespaces[i%namespaces], name: fmt.Sprintf("w%d", i)})
	}
	max := workloads * (workloads - 1)
	if edges > max {
		edges = max
	}
	seen := map[[2]int]bool{}
	for len(seen) < edges {
		c, srv := r.IntN(workloads), r.IntN(workloads)
		if c == srv || seen[[2]int{c, srv}] {
			continue
		}
		seen[[2]int{c, srv}] = true
		s.calls[c] = append(s.calls[c], srv)
	}
	for c := range s.calls {
		sort.Ints(s.calls[c])
	}
	return s
}

func (s *synthetic) clients() []int {
	out := make([]int, 0, len(s.calls))
	for c := range s.calls {
		out = append(out, c)
	}
	sort.Ints(out)
	return out
}

func (s *synthetic) intents(c int) *v2beta1.ClientIntents {
	w := s.workloads[c]
	ci := &v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: w.name},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: w.name}},
	}
	for _, srv := range s.calls[c] {
		t := s.workloads[srv]
		ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: t.name + "." + t.ns}})
	}
	return ci
}

// expected compiles, without any cluster, the policies the operator must converge to.
func (s *synthetic) expected() map[client.ObjectKey]*networkingv1.NetworkPolicy {
	clientsOf := map[int][]int{}
	for c, servers := range s.calls {
		for _, srv := range servers {
			clientsOf[srv] = append(clientsOf[srv], c)
		}
	}
	sel := func(w workload) *metav1.LabelSelector {
		d := tutorial.Deployment(w.ns, w.name, 8080)
		pods := []netpol.Pod{{Labels: d.Spec.Template.Labels, Identity: identity.Identity{Namespace: w.ns, Name: w.name, Kind: "Deployment"}}}
		return netpol.SelectPods(w.ref(), []netpol.Workload{{Kind: "Deployment", Name: w.name, Selector: d.Spec.Selector}}, pods).Selector
	}
	out := map[client.ObjectKey]*networkingv1.NetworkPolicy{}
	for srv, clients := range clientsOf {
		w := s.workloads[srv]
		in := netpol.Input{Server: intent.Server{Ref: w.ref()}, Pods: sel(w)}
		for _, c := range clients {
			in.Clients = append(in.Clients, netpol.Client{Ref: s.workloads[c].ref(), Pods: sel(s.workloads[c])})
		}
		p := netpol.Compile(in)
		out[client.ObjectKeyFromObject(p)] = p
	}
	return out
}

// create writes namespaces, then each workload as a Deployment, a ReplicaSet it owns and
// pods the ReplicaSet owns, exactly as the Deployment and ReplicaSet controllers would.
func (s *synthetic) create(ctx context.Context, c client.Client, workers int) error {
	for _, ns := range s.namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return parallel(len(s.workloads), workers, func(i int) error {
		return createWorkload(ctx, c, s.workloads[i], s.pods)
	})
}

func createWorkload(ctx context.Context, c client.Client, w workload, pods int) error {
	d := tutorial.Deployment(w.ns, w.name, 8080)
	n := int32(pods)
	d.Spec.Replicas = &n
	if err := c.Create(ctx, d); err != nil {
		return fmt.Errorf("creating Deployment %s/%s: %w", w.ns, w.name, err)
	}
	yes := true
	hash := templateHash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: w.name + "-" + hash,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &n, Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	rs.Spec.Template.Labels = map[string]string{"app": w.name, "pod-template-hash": hash}
	if err := c.Create(ctx, rs); err != nil {
		return fmt.Errorf("creating ReplicaSet %s/%s: %w", w.ns, rs.Name, err)
	}
	for i := 0; i < pods; i++ {
		if err := createPod(ctx, c, rs, i); err != nil {
			return err
		}
	}
	return nil
}

func createPod(ctx context.Context, c client.Client, rs *appsv1.ReplicaSet, i int) error {
	yes := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: rs.Namespace, Name: fmt.Sprintf("%s-%d", rs.Name, i), Labels: rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
		Spec: rs.Spec.Template.Spec,
	}
	if err := c.Create(ctx, p); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, fn func(int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
