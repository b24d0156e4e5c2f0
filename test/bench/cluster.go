package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// templateHash stands for the pod-template-hash the Deployment controller would compute.
const templateHash = "5d4f8b"

// workload is one generated workload: a Deployment, StatefulSet, CronJob (with a Job),
// bare Job or standalone ReplicaSet, with pods; some have a Service.
type workload struct {
	ns, name, kind string
	service        bool
}

// kindMix is the share of each owner kind among generated workloads, in tenths: most
// clusters are mostly Deployments, but pod finding and labelling must be measured on the
// kinds whose pods no stable selector finds.
var kindMix = []string{"Deployment", "Deployment", "Deployment", "Deployment", "Deployment", "Deployment", "StatefulSet", "CronJob", "Job", "ReplicaSet"}

// selectorKind reports whether policies select the kind's pods by its own selector.
func selectorKind(kind string) bool { return kind == "Deployment" || kind == "StatefulSet" }

func (w workload) ref() intent.Ref { return intent.Ref{Namespace: w.ns, Name: w.name} }

// synthetic is a seeded, generated cluster: workloads spread over namespaces and a random
// graph of declared calls between them.
type synthetic struct {
	namespaces []string
	workloads  []workload
	// calls maps a client index to the server indexes it calls.
	calls map[int][]int
	// viaService marks the calls declared as a call to the server's Service.
	viaService map[[2]int]bool
	pods       int
}

func generate(seed uint64, namespaces, workloads, edges, podsPerWorkload int) *synthetic {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &synthetic{calls: map[int][]int{}, viaService: map[[2]int]bool{}, pods: podsPerWorkload}
	for i := 0; i < namespaces; i++ {
		s.namespaces = append(s.namespaces, fmt.Sprintf("bench-%d", i))
	}
	for i := 0; i < workloads; i++ {
		kind := kindMix[i%len(kindMix)]
		s.workloads = append(s.workloads, workload{ns: s.namespaces[i%namespaces], name: fmt.Sprintf("w%d", i), kind: kind, service: selectorKind(kind) && i%3 == 0})
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
		if s.workloads[srv].service && r.IntN(2) == 0 {
			s.viaService[[2]int{c, srv}] = true
		}
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
		if s.viaService[[2]int{c, srv}] {
			ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: "svc-" + t.name + "." + t.ns}})
			continue
		}
		ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: t.name + "." + t.ns}})
	}
	return ci
}

// podLabel is the operator label set one pod must carry for the policies to select it.
type podLabel struct {
	ns, name string
	labels   map[string]string
}

// labelled lists the pods the operator must label: those of workloads whose pods no
// stable selector finds, when the workload is a client or a server called by name.
func (s *synthetic) labelled() []podLabel {
	involved := map[int]bool{}
	for c, servers := range s.calls {
		involved[c] = true
		for _, srv := range servers {
			if !s.viaService[[2]int{c, srv}] {
				involved[srv] = true
			}
		}
	}
	var out []podLabel
	for i, w := range s.workloads {
		if !involved[i] || selectorKind(w.kind) {
			continue
		}
		owner := w.name
		if w.kind == "CronJob" {
			owner = w.name + "-29000000"
		}
		labels := compile.IdentityLabels(identity.Identity{Namespace: w.ns, Name: w.name, Kind: w.kind})
		for p := 0; p < s.pods; p++ {
			out = append(out, podLabel{ns: w.ns, name: fmt.Sprintf("%s-%d", owner, p), labels: labels})
		}
	}
	return out
}

// podLabels are the labels the generator gives a workload's pods.
func podLabels(w workload) map[string]string { return map[string]string{"app": w.name} }

// serviceOf is a workload's Service: port 80 to the pods' http port.
func serviceOf(w workload) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "svc-" + w.name},
		Spec:       corev1.ServiceSpec{Selector: podLabels(w), Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
}

// expected compiles, without any cluster, the policies the operator must converge to,
// and for each ClientIntents the policies its calls need.
func (s *synthetic) expected() (policies map[client.ObjectKey]*networkingv1.NetworkPolicy, needs map[client.ObjectKey][]client.ObjectKey) {
	type server struct {
		index   int
		service bool
	}
	clientsOf := map[server][]int{}
	for c, servers := range s.calls {
		for _, srv := range servers {
			k := server{srv, s.viaService[[2]int{c, srv}]}
			clientsOf[k] = append(clientsOf[k], c)
		}
	}
	sel := func(w workload) *metav1.LabelSelector {
		if !selectorKind(w.kind) {
			return compile.ByLabel(w.ref()).Selector
		}
		pods := []compile.Pod{{Labels: podLabels(w), Identity: identity.Identity{Namespace: w.ns, Name: w.name, Kind: w.kind}}}
		return compile.SelectPods(w.ref(), []compile.Workload{{Kind: w.kind, Name: w.name, Selector: &metav1.LabelSelector{MatchLabels: podLabels(w)}}}, pods).Selector
	}
	policies = map[client.ObjectKey]*networkingv1.NetworkPolicy{}
	needs = map[client.ObjectKey][]client.ObjectKey{}
	for srv, clients := range clientsOf {
		w := s.workloads[srv.index]
		in := compile.Input{Server: intent.Server{Ref: w.ref()}, Pods: sel(w)}
		if srv.service {
			svc := serviceOf(w)
			in = compile.Input{Server: intent.Server{Ref: intent.Ref{Namespace: w.ns, Name: svc.Name}, Service: true}, Pods: compile.ServiceSelector(svc), Ports: compile.ServicePorts(svc)}
		}
		for _, c := range clients {
			in.Clients = append(in.Clients, compile.Client{Ref: s.workloads[c].ref(), Pods: sel(s.workloads[c])})
		}
		p := compile.Compile(in)
		k := client.ObjectKeyFromObject(p)
		policies[k] = p
		for _, c := range clients {
			ci := client.ObjectKey{Namespace: s.workloads[c].ns, Name: s.workloads[c].name}
			needs[ci] = append(needs[ci], k)
		}
	}
	return policies, needs
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
	n := int32(pods)
	labels := podLabels(w)
	tpl := tutorial.Deployment(w.ns, w.name, 8080).Spec.Template
	tpl.Labels = labels
	yes := true
	ownedBy := func(apiVersion, kind string, o client.Object) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: o.GetName(), UID: o.GetUID(), Controller: &yes}}
	}
	meta := metav1.ObjectMeta{Namespace: w.ns, Name: w.name}
	var owner client.Object
	var ownerRef []metav1.OwnerReference
	switch w.kind {
	case "", "Deployment":
		d := &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tpl}}
		if err := c.Create(ctx, d); err != nil {
			return fmt.Errorf("creating Deployment %s/%s: %w", w.ns, w.name, err)
		}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: w.name + "-" + templateHash, OwnerReferences: ownedBy("apps/v1", "Deployment", d)},
			Spec:       appsv1.ReplicaSetSpec{Replicas: &n, Selector: d.Spec.Selector, Template: tpl},
		}
		rs.Spec.Template.Labels = map[string]string{"app": w.name, "pod-template-hash": templateHash}
		if err := c.Create(ctx, rs); err != nil {
			return fmt.Errorf("creating ReplicaSet %s/%s: %w", w.ns, rs.Name, err)
		}
		owner, ownerRef, labels = rs, ownedBy("apps/v1", "ReplicaSet", rs), rs.Spec.Template.Labels
	case "StatefulSet":
		ss := &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tpl}}
		owner, ownerRef = ss, nil
	case "ReplicaSet":
		rs := &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tpl}}
		owner = rs
	case "Job", "CronJob":
		tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
		job := &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: tpl}}
		if w.kind == "CronJob" {
			suspend := true
			cj := &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: &suspend, JobTemplate: batchv1.JobTemplateSpec{Spec: job.Spec}}}
			if err := c.Create(ctx, cj); err != nil {
				return fmt.Errorf("creating CronJob %s/%s: %w", w.ns, w.name, err)
			}
			job.Name, job.OwnerReferences = w.name+"-29000000", ownedBy("batch/v1", "CronJob", cj)
		}
		owner = job
	default:
		return fmt.Errorf("unknown workload kind %q", w.kind)
	}
	if ownerRef == nil {
		if err := c.Create(ctx, owner); err != nil {
			return fmt.Errorf("creating %s %s/%s: %w", w.kind, w.ns, owner.GetName(), err)
		}
		gvk, err := c.GroupVersionKindFor(owner)
		if err != nil {
			return err
		}
		ownerRef = ownedBy(gvk.GroupVersion().String(), gvk.Kind, owner)
	}
	if w.service {
		if err := c.Create(ctx, serviceOf(w)); err != nil {
			return fmt.Errorf("creating Service %s/svc-%s: %w", w.ns, w.name, err)
		}
	}
	for i := 0; i < pods; i++ {
		if err := createPod(ctx, c, owner.GetNamespace(), owner.GetName(), ownerRef, labels, tpl.Spec, i); err != nil {
			return err
		}
	}
	return nil
}

func createPod(ctx context.Context, c client.Client, ns, owner string, ownerRef []metav1.OwnerReference, labels map[string]string, spec corev1.PodSpec, i int) error {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", owner, i), Labels: labels, OwnerReferences: ownerRef},
		Spec:       spec,
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
