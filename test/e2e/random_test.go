package e2e

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

var (
	randomSeed  = flag.Int64("random.seed", 0, "seed of the randomized operator test (0: time-based, printed)")
	randomSteps = flag.Int("random.steps", 60, "steps per enforcement mode of the randomized operator test")
)

// The randomized property test of the real operator: seeded random clusters (every owner
// kind, Services with and without selectors, namespaces created after the intents that
// name them, ProtectedServices, shadow mode on and off) and random edits; after each
// step, once the cluster is quiet, every pod pair is checked with the independent
// evaluator against an oracle that knows each pod's identity from the objects the test
// made, every target the status calls Enforced or Shadow is checked against it, and
// what the intentguard CLI predicted for the step (plan and explain, from a snapshot
// taken before the step's intents were applied) is checked against what the operator
// did: its NetworkPolicies and pod labels, every pod pair's verdict, and the policies
// it created, updated and deleted.
func TestRandomizedClusterEveryPodPair(t *testing.T) {
	seed := seedOr(*randomSeed)
	t.Logf("seed %d (replay: go test ./test/e2e -run TestRandomizedClusterEveryPodPair -args -random.seed=%d)", seed, seed)
	widgetCRD(t)
	for _, shadow := range []bool{false, true} {
		name := "enforcing"
		if shadow {
			name = "shadow"
		}
		t.Run(name, func(t *testing.T) {
			counter := startOperator(t, enforcement.Options{Shadow: shadow})
			w := &world{t: t, seed: seed, rnd: rand.New(rand.NewSource(seed)), shadow: shadow, counter: counter, prefix: "r" + name[:1],
				workloads: map[string]*rworkload{}, intents: map[string]*rintents{}, protected: map[string]bool{}, live: map[string]bool{}, bare: map[string]*rworkload{}}
			w.setup()
			w.check(0)
			w.comparePrediction(w.predict(0, nil))
			for step := 1; step <= *randomSteps; step++ {
				// A change of intents is predicted from a snapshot taken before it reaches the
				// API server; a change of the cluster itself, once the cluster has settled.
				var p *prediction
				if e := w.step(); e != nil {
					p = w.predict(step, e)
					e.apply()
				}
				w.check(step)
				if p == nil {
					p = w.predict(step, nil)
				}
				w.comparePrediction(p)
			}
			t.Logf("%d steps, %d pod pairs checked, %d of them denied, 0 wrong", *randomSteps, w.pairs, w.denied)
			t.Logf("the CLI predicted %d policies, %d labelled pods, %d pod pairs, %d explanations and %d NetworkPolicy writes as the operator made them, in %v",
				w.predictedPolicies, w.predictedLabels, w.predicted, w.explained, w.planned, w.predicting.Round(time.Millisecond))
			if w.denied == 0 {
				t.Errorf("no pair was ever denied: the run checked nothing enforced")
			}
			if w.predictedPolicies == 0 {
				t.Errorf("the analysis never predicted a policy: its check compared nothing")
			}
		})
	}
}

// seedOr returns the seed a flag gave, or, for 0, one from the clock (to be printed).
func seedOr(flagged int64) int64 {
	if flagged != 0 {
		return flagged
	}
	return time.Now().UnixNano() % 1_000_000
}

// rworkload is a workload the test made; its pods carry the label w=<key>.
type rworkload struct {
	ns, name, kind string
	// identity is the name the oracle expects: the annotation's, else the workload's.
	identity  string
	annotated bool
	service   bool
	replicas  int32
}

func (w *rworkload) key() string { return w.ns + "." + w.name }

// identityKind is the kind of the identity of the workload's pods.
func (w *rworkload) identityKind() string {
	if w.annotated {
		return ""
	}
	return w.kind
}

type rtarget struct {
	service bool
	// ns and name name the server; kind restricts a kubernetes target.
	ns, name, kind string
}

type rintents struct {
	client  *rworkload
	targets []rtarget
}

type world struct {
	t       *testing.T
	seed    int64
	rnd     *rand.Rand
	shadow  bool
	counter *suite.WriteCounter
	prefix  string
	seq     int
	// namespaces are the namespaces the test uses, live or planned; live says which exist.
	namespaces []string
	live       map[string]bool
	workloads  map[string]*rworkload
	intents    map[string]*rintents
	protected  map[string]bool // "ns/name" of ProtectedServices
	// bare are pods the test made itself, by "ns/name", with their identity.
	bare map[string]*rworkload
	// pairs and denied count the verdicts checked, to show the test is not vacuous.
	pairs, denied int
	log           []string
	// last is the previous step's prediction, the base of a plan no snapshot precedes, and
	// policies the NetworkPolicies on the API server once it had settled.
	last     *prediction
	policies map[string]*networkingv1.NetworkPolicy
	// predicted, explained and planned count the prediction's checks; predicting is the
	// time they took.
	predicted, explained, planned int
	predicting                    time.Duration
	// predictedPolicies and predictedLabels count the policies and labelled pods the
	// analysis predicted, to show its check is not vacuous either.
	predictedPolicies, predictedLabels int
}

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

func (w *world) setup() {
	for i := 0; i < 3; i++ {
		w.namespaces = append(w.namespaces, fmt.Sprintf("%s-ns%d", w.prefix, i))
	}
	// The last namespace is created only later, after intents name it.
	for _, ns := range w.namespaces[:2] {
		w.createNamespace(ns)
	}
	for _, kind := range []string{"Deployment", "Deployment", "StatefulSet", "CronJob", "Job", "Pod", "ReplicaSet", "Widget", "Deployment"} {
		w.addWorkload(kind, w.namespaces[w.rnd.Intn(2)])
	}
	w.services()
}

func (w *world) createNamespace(ns string) {
	env.Create(w.t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	w.t.Cleanup(func() {
		_ = kube.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	w.live[ns] = true
	w.logf("namespace %s", ns)
}

func (w *world) liveNamespaces() []string {
	var out []string
	for _, ns := range w.namespaces {
		if w.live[ns] {
			out = append(out, ns)
		}
	}
	return out
}

func (w *world) sortedWorkloads() []*rworkload {
	out := make([]*rworkload, 0, len(w.workloads))
	for _, wl := range w.workloads {
		out = append(out, wl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

func (w *world) pick() *rworkload {
	all := w.sortedWorkloads()
	if len(all) == 0 {
		return nil
	}
	return all[w.rnd.Intn(len(all))]
}

func (w *world) template(wl *rworkload, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"w": wl.name}},
		Spec:       podSpec(restart),
	}
	if wl.annotated {
		tpl.Annotations = map[string]string{identity.WorkloadNameAnnotation: wl.identity}
	}
	return tpl
}

// addWorkload creates a workload of the kind; a fifth of them name their identity with
// the workload-name annotation.
func (w *world) addWorkload(kind, ns string) {
	w.seq++
	w.addNamedWorkload(kind, ns, fmt.Sprintf("%s%d", strings.ToLower(kind[:1]), w.seq))
}

// addNamedWorkload is addWorkload with the workload's name chosen by the caller.
func (w *world) addNamedWorkload(kind, ns, name string) *rworkload {
	wl := &rworkload{ns: ns, name: name, kind: kind, replicas: int32(1 + w.rnd.Intn(2))}
	wl.identity = wl.name
	if w.rnd.Intn(5) == 0 {
		wl.annotated = true
		wl.identity = "alias" + fmt.Sprint(w.seq)
	}
	ctx := context.Background()
	meta := metav1.ObjectMeta{Namespace: ns, Name: wl.name}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"w": wl.name}}
	var err error
	switch kind {
	case "Deployment":
		err = kube.Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &wl.replicas, Selector: sel, Template: w.template(wl, corev1.RestartPolicyAlways)}})
	case "StatefulSet":
		err = kube.Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &wl.replicas, Selector: sel, PodManagementPolicy: appsv1.ParallelPodManagement, Template: w.template(wl, corev1.RestartPolicyAlways)}})
	case "ReplicaSet":
		err = kube.Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &wl.replicas, Selector: sel, Template: w.template(wl, corev1.RestartPolicyAlways)}})
	case "Job":
		wl.replicas = 1
		err = kube.Create(ctx, &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: w.template(wl, corev1.RestartPolicyNever)}})
	case "CronJob":
		wl.replicas = 1
		cj := &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: ptr(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: w.template(wl, corev1.RestartPolicyNever)}}}}
		if err = kube.Create(ctx, cj); err == nil {
			err = kube.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: wl.name + "-29000000", OwnerReferences: controllerRef(cj, "batch/v1", "CronJob")},
				Spec: batchv1.JobSpec{Template: w.template(wl, corev1.RestartPolicyNever)}})
		}
	case "Widget":
		wd := widget(w.t, ns, wl.name)
		err = kube.Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: wl.name + "-7c9d", OwnerReferences: controllerRef(wd, "test.intentguard.dev/v1", "Widget")},
			Spec: appsv1.ReplicaSetSpec{Replicas: &wl.replicas, Selector: sel, Template: w.template(wl, corev1.RestartPolicyAlways)}})
	case "Pod":
		wl.replicas = 1
		tpl := w.template(wl, corev1.RestartPolicyAlways)
		err = kube.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: wl.name, Labels: tpl.Labels, Annotations: tpl.Annotations}, Spec: tpl.Spec})
		w.bare[ns+"/"+wl.name] = wl
	}
	if err != nil {
		w.t.Fatalf("creating %s %s/%s: %v", kind, ns, wl.name, err)
	}
	w.workloads[wl.key()] = wl
	w.logf("add %s %s (identity %s)", kind, wl.key(), wl.identity)
	return wl
}

// services gives some workloads a Service named svc-<name>, and each namespace one
// Service without a selector.
func (w *world) services() {
	for _, wl := range w.sortedWorkloads() {
		if wl.service || w.rnd.Intn(2) == 0 {
			continue
		}
		wl.service = true
		service(w.t, wl.ns, "svc-"+wl.name, map[string]string{"w": wl.name}, 80, intstr.FromString("http"))
	}
	for _, ns := range w.liveNamespaces() {
		var svc corev1.Service
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "external"}, &svc); err != nil {
			service(w.t, ns, "external", nil, 5432, intstr.FromInt32(5432))
		}
	}
}

func (w *world) randomTarget(c *rworkload) rtarget {
	if w.rnd.Intn(8) == 0 {
		// A workload planned in the namespace created later, or one that never exists.
		ns := w.namespaces[2]
		return rtarget{ns: ns, name: "late"}
	}
	if w.rnd.Intn(10) == 0 {
		return rtarget{service: true, ns: c.ns, name: "external"}
	}
	srv := w.pick()
	if srv.service && w.rnd.Intn(2) == 0 {
		return rtarget{service: true, ns: srv.ns, name: "svc-" + srv.name}
	}
	t := rtarget{ns: srv.ns, name: srv.identity}
	if w.rnd.Intn(4) == 0 {
		t.kind = srv.identityKind()
	}
	return t
}

func (w *world) writeIntents(c *rworkload) *edit {
	n := 1 + w.rnd.Intn(3)
	ri := &rintents{client: c}
	var targets []v2beta1.Target
	seen := map[rtarget]bool{}
	for i := 0; i < n; i++ {
		tg := w.randomTarget(c)
		if seen[tg] || (!tg.service && tg.ns == c.ns && tg.name == c.identity) {
			continue
		}
		seen[tg] = true
		ri.targets = append(ri.targets, tg)
		name := tg.name
		if tg.ns != c.ns {
			name += "." + tg.ns
		}
		if tg.service {
			targets = append(targets, v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}})
		} else {
			targets = append(targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: tg.kind}})
		}
	}
	key := client.ObjectKey{Namespace: c.ns, Name: "ci-" + c.identity}
	spec := v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: c.identity}, Targets: targets}
	w.intents[c.ns+"/"+c.identity] = ri
	w.logf("intents %s -> %+v", c.key(), ri.targets)
	return &edit{put: []client.Object{&v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Spec: spec}}, apply: func() {
		ctx := context.Background()
		var ci v2beta1.ClientIntents
		err := kube.Get(ctx, key, &ci)
		switch {
		case err == nil:
			ci.Spec.Targets = targets
			err = kube.Update(ctx, &ci)
		default:
			ci = v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Spec: spec}
			err = kube.Create(ctx, &ci)
		}
		if err != nil {
			w.t.Fatalf("writing intents of %s: %v", c.key(), err)
		}
	}}
}

// step makes one random change; a change of intents or ProtectedServices is returned,
// not yet applied.
func (w *world) step() *edit {
	ctx := context.Background()
	switch op := w.rnd.Intn(12); {
	case op < 4:
		if c := w.pick(); c != nil {
			return w.writeIntents(c)
		}
	case op == 4:
		for k, ri := range w.intents {
			ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ri.client.ns, Name: "ci-" + ri.client.identity}}
			delete(w.intents, k)
			w.logf("delete intents %s", k)
			return &edit{gone: []client.Object{ci}, apply: func() { _ = kube.Delete(ctx, ci) }}
		}
	case op == 5:
		kinds := []string{"Deployment", "StatefulSet", "CronJob", "Job", "Pod", "ReplicaSet", "Widget"}
		ns := w.liveNamespaces()[w.rnd.Intn(len(w.liveNamespaces()))]
		w.addWorkload(kinds[w.rnd.Intn(len(kinds))], ns)
		w.services()
	case op == 6 || op == 7:
		var deps []*rworkload
		for _, wl := range w.sortedWorkloads() {
			if wl.kind == "Deployment" {
				deps = append(deps, wl)
			}
		}
		if len(deps) == 0 {
			return nil
		}
		d := deps[w.rnd.Intn(len(deps))]
		var obj appsv1.Deployment
		if err := kube.Get(ctx, client.ObjectKey{Namespace: d.ns, Name: d.name}, &obj); err != nil {
			w.t.Fatal(err)
		}
		if op == 6 {
			// A rollout: a new pod-template-hash, a new ReplicaSet, old and new pods.
			if obj.Spec.Template.Annotations == nil {
				obj.Spec.Template.Annotations = map[string]string{}
			}
			obj.Spec.Template.Annotations["rollout"] = fmt.Sprint(w.seq)
			w.seq++
			w.logf("rollout %s", d.key())
		} else {
			d.replicas = int32(w.rnd.Intn(4))
			obj.Spec.Replicas = &d.replicas
			w.logf("scale %s to %d", d.key(), d.replicas)
		}
		if err := kube.Update(ctx, &obj); err != nil {
			w.t.Fatal(err)
		}
	case op == 8:
		if ns := w.namespaces[2]; !w.live[ns] {
			w.createNamespace(ns)
			w.addWorkload("Deployment", ns)
			// The workload the intents named before the namespace existed.
			late := &rworkload{ns: ns, name: "late", kind: "Deployment", identity: "late", replicas: 1}
			sel := &metav1.LabelSelector{MatchLabels: map[string]string{"w": "late"}}
			env.Create(w.t, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}, Spec: appsv1.DeploymentSpec{Replicas: &late.replicas, Selector: sel, Template: w.template(late, corev1.RestartPolicyAlways)}})
			w.workloads[late.key()] = late
			w.services()
		}
	case op == 9:
		if wl := w.pick(); wl != nil {
			key := wl.ns + "/" + wl.identity
			ps := &v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: wl.ns, Name: "ps-" + wl.identity}, Spec: v2beta1.ProtectedServiceSpec{Name: wl.identity}}
			if w.protected[key] {
				delete(w.protected, key)
				w.logf("unprotect %s", key)
				return &edit{gone: []client.Object{ps}, apply: func() { deleteObj(w.t, ps) }}
			}
			w.protected[key] = true
			w.logf("protect %s", key)
			return &edit{put: []client.Object{ps}, apply: func() { env.Create(w.t, ps) }}
		}
	case op == 10:
		// A workload goes away, with its pods; intents naming it stay.
		wl := w.pick()
		if wl == nil || wl.name == "late" {
			return nil
		}
		w.deleteWorkload(wl)
	default:
		// An impostor: a pod of another identity (owned by a Widget, so no ReplicaSet
		// adopts it) with a workload's labels, which must not inherit that workload's rights.
		if wl := w.pick(); wl != nil {
			w.seq++
			name := fmt.Sprintf("impostor%d", w.seq)
			owner := widget(w.t, wl.ns, name)
			tpl := w.template(wl, corev1.RestartPolicyAlways)
			env.Create(w.t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: wl.ns, Name: name + "-0", Labels: tpl.Labels, OwnerReferences: controllerRef(owner, "test.intentguard.dev/v1", "Widget")}, Spec: tpl.Spec})
			w.bare[wl.ns+"/"+name+"-0"] = &rworkload{ns: wl.ns, name: name, kind: "Widget", identity: name, replicas: 1}
			w.logf("impostor %s/%s with the labels of %s", wl.ns, name, wl.key())
		}
	}
	return nil
}

// deleteWorkload deletes a workload of a kind whose pods go with it, and forgets it;
// other kinds are left in place.
func (w *world) deleteWorkload(wl *rworkload) {
	var obj client.Object
	switch wl.kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	case "Job":
		obj = &batchv1.Job{}
	case "Pod":
		obj = &corev1.Pod{}
	default:
		return
	}
	obj.SetNamespace(wl.ns)
	obj.SetName(wl.name)
	if err := kube.Delete(context.Background(), obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		w.t.Fatalf("seed %d: deleting %s %s: %v", w.seed, wl.kind, wl.key(), err)
	}
	delete(w.workloads, wl.key())
	delete(w.bare, wl.ns+"/"+wl.name)
	w.logf("delete %s %s", wl.kind, wl.key())
}

// podIdentity is the oracle's identity of a pod, from what the test made: the pods it
// created itself by name, the others by the workload label their templates carry.
func (w *world) podIdentity(p *corev1.Pod) (*rworkload, bool) {
	if wl, ok := w.bare[p.Namespace+"/"+p.Name]; ok {
		return wl, true
	}
	wl, ok := w.workloads[p.Namespace+"."+p.Labels["w"]]
	if ok && wl.kind == "Pod" {
		return nil, false // only the bare pod itself is that identity
	}
	return wl, ok
}

// oraclePolicy is a server's policy as the oracle computes it.
type oraclePolicy struct {
	selects func(p *corev1.Pod) bool
	clients []*rworkload
}

// isProtected reports whether a ProtectedService covers identity name (kind) in ns.
func (w *world) isProtected(ns, name string) bool { return w.protected[ns+"/"+name] }

// expected computes the oracle's policies: one per enforced server that some intents or
// a ProtectedService name.
func (w *world) expected(pods []*corev1.Pod) []oraclePolicy {
	type server struct {
		service        bool
		ns, name, kind string
	}
	clients := map[server][]*rworkload{}
	var order []server
	add := func(s server, c *rworkload) {
		if _, ok := clients[s]; !ok {
			order = append(order, s)
		}
		if c != nil {
			clients[s] = append(clients[s], c)
		} else if clients[s] == nil {
			clients[s] = []*rworkload{}
		}
	}
	keys := make([]string, 0, len(w.intents))
	for k := range w.intents {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ri := w.intents[k]
		for _, tg := range ri.targets {
			add(server{tg.service, tg.ns, tg.name, tg.kind}, ri.client)
		}
	}
	for k := range w.protected {
		ns, name, _ := strings.Cut(k, "/")
		add(server{false, ns, name, ""}, nil)
	}
	var out []oraclePolicy
	for _, s := range order {
		if !w.live[s.ns] {
			continue
		}
		s := s
		var selects func(p *corev1.Pod) bool
		enforced := !w.shadow
		if s.service {
			owner := strings.TrimPrefix(s.name, "svc-")
			if s.name == "external" {
				continue // no selector: no policy
			}
			selects = func(p *corev1.Pod) bool { return p.Namespace == s.ns && p.Labels["w"] == owner }
			for _, p := range pods {
				if id, ok := w.podIdentity(p); ok && selects(p) && w.isProtected(s.ns, id.identity) {
					enforced = true
				}
			}
		} else {
			selects = func(p *corev1.Pod) bool {
				id, ok := w.podIdentity(p)
				return ok && p.Namespace == s.ns && id.identity == s.name && (s.kind == "" || s.kind == id.identityKind())
			}
			for k := range w.protected {
				if k == s.ns+"/"+s.name {
					enforced = true
				}
			}
		}
		if enforced {
			out = append(out, oraclePolicy{selects: selects, clients: clients[s]})
		}
	}
	return out
}

// check waits for the operator and the controllers to go quiet, then compares every pod
// pair with the oracle, and the status of every target with it.
func (w *world) check(step int) {
	var wrong []string
	for attempt := 0; attempt < 3; attempt++ {
		w.quiet()
		wrong = w.wrongPairs()
		if len(wrong) == 0 {
			break
		}
	}
	if len(wrong) > 0 {
		w.t.Fatalf("seed %d, step %d: %d wrong verdicts:\n%s\nchanges so far:\n%s", w.seed, step, len(wrong), strings.Join(wrong[:min(len(wrong), 30)], "\n"), strings.Join(w.log, "\n"))
	}
	w.checkStatus(step)
}

// quiet waits until neither the operator nor the cluster's controllers have changed
// anything for a while, and reports whether they stopped before the deadline.
func (w *world) quiet() bool {
	last, stable := "", 0
	deadline := time.Now().Add(30 * time.Second)
	for stable < 3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		var pods corev1.PodList
		if err := kube.List(context.Background(), &pods); err != nil {
			w.t.Fatal(err)
		}
		snap := fmt.Sprintf("%d/%s", w.counter.Writes(), pods.ResourceVersion)
		if snap == last {
			stable++
		} else {
			last, stable = snap, 0
		}
	}
	return stable >= 3
}

func (w *world) livePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, ns := range w.liveNamespaces() {
		var list corev1.PodList
		if err := kube.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			w.t.Fatal(err)
		}
		for i := range list.Items {
			if list.Items[i].DeletionTimestamp.IsZero() {
				out = append(out, &list.Items[i])
			}
		}
	}
	return out
}

func (w *world) wrongPairs() []string { return w.wrongPairsTo(nil) }

// wrongPairsTo compares with the oracle the verdicts of every pair whose destination
// the filter accepts (every pair when it is nil).
func (w *world) wrongPairsTo(dstFilter func(*corev1.Pod) bool) []string {
	pods := w.livePods()
	policies := w.expected(pods)
	m, err := connectivity.Evaluate(context.Background(), kube, w.liveNamespaces(), http8080)
	if err != nil {
		w.t.Fatal(err)
	}
	byKey := map[string]connectivity.Pod{}
	for _, p := range m.Pods {
		byKey[p.Namespace+"/"+p.Name] = p
	}
	var wrong []string
	for _, dst := range pods {
		if dstFilter != nil && !dstFilter(dst) {
			continue
		}
		for _, src := range pods {
			if src == dst {
				continue
			}
			srcID, ok1 := w.podIdentity(src)
			dstID, ok2 := w.podIdentity(dst)
			if !ok1 || !ok2 {
				continue // pods the test did not make (none expected)
			}
			protected, allowed := false, false
			for _, pol := range policies {
				if !pol.selects(dst) {
					continue
				}
				protected = true
				for _, c := range pol.clients {
					if c.ns == src.Namespace && c.identity == srcID.identity {
						allowed = true
					}
				}
			}
			want := !protected || allowed
			w.pairs++
			if !want {
				w.denied++
			}
			s, d := byKey[src.Namespace+"/"+src.Name], byKey[dst.Namespace+"/"+dst.Name]
			if got := m.Allowed(s, d); got != want {
				wrong = append(wrong, fmt.Sprintf("%s/%s (%s) -> %s/%s (%s): allowed=%v, want %v", src.Namespace, src.Name, srcID.identity, dst.Namespace, dst.Name, dstID.identity, got, want))
			}
		}
	}
	return wrong
}

// checkStatus holds the status to what the oracle says: a target reported Enforced has
// an enforced policy for its server, and one reported Shadow has none.
func (w *world) checkStatus(step int) {
	pods := w.livePods()
	for _, ri := range w.intents {
		var ci v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ri.client.ns, Name: "ci-" + ri.client.identity}, &ci); err != nil {
			w.t.Fatal(err)
		}
		if ci.Status.ObservedGeneration != ci.Generation || !apimeta.IsStatusConditionTrue(ci.Status.Conditions, enforcement.ConditionReady) {
			continue
		}
		for i, tg := range ri.targets {
			if i >= len(ci.Status.Targets) {
				break
			}
			st := ci.Status.Targets[i]
			enforced := w.targetEnforced(tg, pods)
			if (st.State == string(enforcement.Enforced)) != enforced && slices.Contains([]string{string(enforcement.Enforced), string(enforcement.Shadow)}, st.State) {
				w.t.Fatalf("seed %d, step %d: intents of %s report %s for %s (%s), the oracle says enforced=%v\nchanges so far:\n%s", w.seed, step, ri.client.key(), st.State, st.Target, st.Message, enforced, strings.Join(w.log, "\n"))
			}
		}
	}
}

func (w *world) targetEnforced(tg rtarget, pods []*corev1.Pod) bool {
	if !w.live[tg.ns] {
		return false
	}
	if !w.shadow {
		return true
	}
	if tg.service {
		owner := strings.TrimPrefix(tg.name, "svc-")
		for _, p := range pods {
			if id, ok := w.podIdentity(p); ok && p.Namespace == tg.ns && p.Labels["w"] == owner && w.isProtected(tg.ns, id.identity) {
				return true
			}
		}
		return false
	}
	return w.isProtected(tg.ns, tg.name)
}
