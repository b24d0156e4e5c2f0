// Command statuscost measures what the API server spends on the writes a bulk is made of:
// NetworkPolicy creates, ClientIntents creates and ClientIntents status writes in several
// shapes (merge patch as the operator sends it, a smaller status, server-side apply, a
// full update, a second patch over existing managed fields), with the CRD's validation
// rules, without them, and with a schema that accepts anything. For each it reports wall time at a fixed concurrency and the
// CPU the kube-apiserver and etcd processes used, per request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/process"
)

func main() {
	n := flag.Int("n", 500, "requests per variant")
	conc := flag.Int("concurrency", 4, "requests in flight")
	targets := flag.Int("targets", 3, "targets per ClientIntents")
	rounds := flag.Int("rounds", 3, "runs of each variant (the median is reported)")
	profile := flag.String("profile", "", "write a CPU profile of kube-apiserver during the first run of the operator's status patch to this file")
	watchers := flag.Int("watchers", 0, "watches of ClientIntents and NetworkPolicies held open, as an operator and a bench hold them")
	flag.Parse()
	if err := run(*n, *conc, *targets, *rounds, *watchers, *profile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// cost is what one variant cost.
type cost struct {
	name           string
	n              int
	wall           time.Duration
	apiCPU, etcCPU time.Duration
}

func run(n, conc, targets, rounds, watchers int, profile string) error {
	ctx := context.Background()
	lc, err := controlplane.Start(ctx, controlplane.Options{WithoutControllerManager: true})
	if err != nil {
		return err
	}
	defer func() { _ = lc.Stop() }()
	api, err := childPID("kube-apiserver")
	if err != nil {
		return err
	}
	etcd, err := childPID("etcd")
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return fmt.Errorf("building the scheme: %w", err)
		}
	}
	cfg := rest.CopyConfig(lc.Config)
	cfg.QPS = -1
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	wctx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	for range watchers {
		for _, list := range []client.ObjectList{&v2beta1.ClientIntentsList{}, &networkingv1.NetworkPolicyList{}} {
			w, err := c.Watch(wctx, list)
			if err != nil {
				return fmt.Errorf("watching: %w", err)
			}
			go func() {
				defer w.Stop()
				for {
					select {
					case <-wctx.Done():
						return
					case _, ok := <-w.ResultChan():
						if !ok {
							return
						}
					}
				}
			}()
		}
	}
	m := &meter{api: api, etcd: etcd, conc: conc, n: n}
	if profile != "" {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("API client: %w", err)
		}
		m.profiled, m.profileTo, m.pprof = "status merge patch, full", profile, cs.Discovery().RESTClient()
	}
	ns := 0
	fresh := func() (string, error) {
		ns++
		name := fmt.Sprintf("cost-%d", ns)
		return name, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	// on runs a write on each ClientIntents of a namespace, read before the variant.
	on := func(ns string, write func(*v2beta1.ClientIntents) error) func(int) error {
		objs, err := read(ctx, c, ns)
		return func(i int) error {
			if err != nil {
				return err
			}
			return write(objs[key(ns, i)])
		}
	}
	pass := func(suffix string) error {
		nsName, err := fresh()
		if err != nil {
			return err
		}
		if err := m.phase("NetworkPolicy create"+suffix, func(i int) error { return c.Create(ctx, policy(nsName, i)) }); err != nil {
			return err
		}
		if err := m.phase("ClientIntents create"+suffix, func(i int) error { return c.Create(ctx, intents(nsName, i, targets)) }); err != nil {
			return err
		}
		if err := m.phase("status merge patch, full"+suffix, on(nsName, func(ci *v2beta1.ClientIntents) error { return mergeStatus(ctx, c, ci, full(targets, "")) })); err != nil {
			return err
		}
		if err := m.phase("status merge patch, one message"+suffix, on(nsName, func(ci *v2beta1.ClientIntents) error { return mergeStatus(ctx, c, ci, full(targets, " again")) })); err != nil {
			return err
		}
		if err := m.phase("NetworkPolicy label patch"+suffix, func(i int) error { return policyLabel(ctx, c, nsName, i) }); err != nil {
			return err
		}
		if err := m.phase("ClientIntents label patch"+suffix, on(nsName, func(ci *v2beta1.ClientIntents) error { return labelPatch(ctx, c, ci) })); err != nil {
			return err
		}
		// Each of these writes the first status of ClientIntents no status was written to.
		firsts := []struct {
			name  string
			write func(*v2beta1.ClientIntents) error
		}{
			{"status merge patch, Ready only", func(ci *v2beta1.ClientIntents) error { return mergeStatus(ctx, c, ci, readyOnly()) }},
			{"status server-side apply, full", func(ci *v2beta1.ClientIntents) error { return applyStatus(ctx, c, ci, full(targets, "")) }},
			{"status update, full", func(ci *v2beta1.ClientIntents) error { return updateStatus(ctx, c, ci, full(targets, "")) }},
		}
		for _, v := range firsts {
			ns, err := fresh()
			if err != nil {
				return err
			}
			if err := m.phase("ClientIntents create"+suffix, func(i int) error { return c.Create(ctx, intents(ns, i, targets)) }); err != nil {
				return err
			}
			if err := m.phase(v.name+suffix, on(ns, v.write)); err != nil {
				return err
			}
		}
		return nil
	}
	for range rounds {
		if err := pass(""); err != nil {
			return err
		}
	}
	if err := dropValidationRules(ctx, c); err != nil {
		return err
	}
	for range rounds {
		if err := pass(", CRD without CEL rules"); err != nil {
			return err
		}
	}
	if err := openSchema(ctx, c); err != nil {
		return err
	}
	for range rounds {
		if err := pass(", CRD with an open schema"); err != nil {
			return err
		}
	}
	m.report()
	return nil
}

// meter runs variants and reads the processes' CPU around them.
type meter struct {
	api, etcd int
	conc, n   int
	// profiled names the variant whose first run is profiled into profileTo, from pprof.
	profiled, profileTo string
	pprof               rest.Interface
	// seen holds each variant's runs, order the variants in the order they first ran.
	seen  map[string][]cost
	order []string
}

// report prints each variant's median of its runs, field by field.
func (m *meter) report() {
	fmt.Printf("| variant | requests × runs | wall | wall per request | kube-apiserver CPU per request | etcd CPU per request |\n|---|---|---|---|---|---|\n")
	for _, name := range m.order {
		runs := m.seen[name]
		med := func(f func(cost) time.Duration) time.Duration {
			var v []time.Duration
			for _, r := range runs {
				v = append(v, f(r))
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		c := cost{name: name, n: m.n, wall: med(func(c cost) time.Duration { return c.wall }), apiCPU: med(func(c cost) time.Duration { return c.apiCPU }), etcCPU: med(func(c cost) time.Duration { return c.etcCPU })}
		fmt.Printf("| %s | %d × %d | %.2f s | %.2f ms | %.2f ms | %.2f ms |\n", c.name, c.n, len(runs), c.wall.Seconds(), ms(c.wall, c.n), ms(c.apiCPU, c.n), ms(c.etcCPU, c.n))
	}
}

func ms(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

// takeProfile writes a two-second CPU profile of kube-apiserver, taken while a variant runs.
func (m *meter) takeProfile() error {
	b, err := m.pprof.Get().AbsPath("/debug/pprof/profile").Param("seconds", "2").DoRaw(context.Background())
	if err != nil {
		return fmt.Errorf("profiling kube-apiserver: %w", err)
	}
	if err := os.WriteFile(m.profileTo, b, 0o644); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}

// cpu reads the CPU time kube-apiserver and etcd have used.
func (m *meter) cpu() (api, etcd time.Duration, err error) {
	api, err = process.CPUTimeOf(m.api)
	if err != nil {
		return 0, 0, err
	}
	etcd, err = process.CPUTimeOf(m.etcd)
	return api, etcd, err
}

// phase runs do for 0..n-1 with conc in flight and records its cost under name.
func (m *meter) phase(name string, do func(i int) error) error {
	a0, e0, err := m.cpu()
	if err != nil {
		return err
	}
	profileDone := make(chan error, 1)
	if name == m.profiled {
		m.profiled = ""
		go func() { profileDone <- m.takeProfile() }()
	} else {
		profileDone <- nil
	}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range m.conc {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					first = errors.Join(first, fmt.Errorf("%s %d: %w", name, i, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range m.n {
		next <- i
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)
	if err := errors.Join(first, <-profileDone); err != nil {
		return err
	}
	a1, e1, err := m.cpu()
	if err != nil {
		return err
	}
	if m.seen == nil {
		m.seen = map[string][]cost{}
	}
	if _, ok := m.seen[name]; !ok {
		m.order = append(m.order, name)
	}
	m.seen[name] = append(m.seen[name], cost{name: name, n: m.n, wall: wall, apiCPU: a1 - a0, etcCPU: e1 - e0})
	return nil
}

// childPID finds the process of this program's child running the named binary: envtest
// starts kube-apiserver and etcd as children.
func childPID(comm string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		f := statFields(string(b))
		if len(f) > 2 && strings.Trim(f[0], "()") == comm && f[2] == strconv.Itoa(os.Getpid()) {
			return strconv.Atoi(filepath.Base(d))
		}
	}
	return 0, fmt.Errorf("no %s process started by this one", comm)
}

// statFields splits /proc/pid/stat after the pid; the command name is one field even
// with spaces in it.
func statFields(s string) []string {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return nil
	}
	return append([]string{s[open : close+1]}, strings.Fields(s[close+1:])...)
}

func policy(ns string, i int) *networkingv1.NetworkPolicy {
	tcp := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"intents.intentguard.dev/client": fmt.Sprintf("client-%d", i)}},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
	}}}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("access-to-server-%d", i), Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "intentguard"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"intents.intentguard.dev/server": fmt.Sprintf("server-%d", i)}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{tcp},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

func intents(ns string, i, targets int) *v2beta1.ClientIntents {
	ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("client-%d", i), Namespace: ns}}
	ci.Spec.Workload.Name = fmt.Sprintf("client-%d", i)
	for t := range targets {
		ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: fmt.Sprintf("server-%d.other", i*targets+t)}})
	}
	return ci
}

// full is the status the operator writes for an enforced ClientIntents of n targets.
func full(n int, suffix string) v2beta1.ClientIntentsStatus {
	s := v2beta1.ClientIntentsStatus{ObservedGeneration: 1, UpToDate: true, TargetCount: int32(n), Enforcement: "Enforced"}
	for t := range n {
		s.Targets = append(s.Targets, v2beta1.TargetStatus{Target: fmt.Sprintf("kubernetes server-%d.other", t), Point: "NetworkPolicy", State: string(enforcement.Enforced), Message: "NetworkPolicy other/access-to-server allows this client" + suffix})
	}
	set := func(t string, ok bool, reason, msg string) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: 1})
	}
	set(enforcement.ConditionTargetsResolved, true, enforcement.ReasonResolved, "every target was found in the cluster")
	set(enforcement.ConditionEnforced, true, enforcement.ReasonEnforced, "every target accepts this client and no undeclared one")
	enforcement.SetReadiness(&s.Conditions, enforcement.ReasonReconciled, "every enforcement point reflects this generation"+suffix, 1)
	return s
}

// readyOnly is a status of a summary and the Ready condition alone.
func readyOnly() v2beta1.ClientIntentsStatus {
	s := v2beta1.ClientIntentsStatus{ObservedGeneration: 1, UpToDate: true, Enforcement: "Enforced"}
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: enforcement.ConditionReady, Status: metav1.ConditionTrue, Reason: enforcement.ReasonReconciled, Message: "every enforcement point reflects this generation", ObservedGeneration: 1})
	return s
}

func key(ns string, i int) client.ObjectKey {
	return client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("client-%d", i)}
}

// read lists a namespace's ClientIntents before a variant, as the operator reads them
// from its cache, so that no read is in the variant's cost.
func read(ctx context.Context, c client.Client, ns string) (map[client.ObjectKey]*v2beta1.ClientIntents, error) {
	var list v2beta1.ClientIntentsList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing the ClientIntents of %s: %w", ns, err)
	}
	out := map[client.ObjectKey]*v2beta1.ClientIntents{}
	for i := range list.Items {
		out[client.ObjectKeyFromObject(&list.Items[i])] = &list.Items[i]
	}
	return out, nil
}

// mergeStatus writes a status as the operator does: a JSON merge patch of the difference
// from the object it read.
func mergeStatus(ctx context.Context, c client.Client, ci *v2beta1.ClientIntents, s v2beta1.ClientIntentsStatus) error {
	patch := client.MergeFrom(ci.DeepCopy())
	ci.Status = s
	return c.Status().Patch(ctx, ci, patch)
}

// policyLabel labels a NetworkPolicy by a merge patch, the built-in counterpart of
// labelPatch.
func policyLabel(ctx context.Context, c client.Client, ns string, i int) error {
	np := policy(ns, i)
	return c.Patch(ctx, np, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"measured":"yes"}}}`)))
}

// labelPatch labels a ClientIntents by a merge patch: a write of the same object that
// leaves the status alone.
func labelPatch(ctx context.Context, c client.Client, ci *v2beta1.ClientIntents) error {
	patch := client.MergeFrom(ci.DeepCopy())
	ci.Labels = map[string]string{"measured": "yes"}
	return c.Patch(ctx, ci, patch)
}

// applyStatus applies the status alone, under a field owner of its own.
func applyStatus(ctx context.Context, c client.Client, ci *v2beta1.ClientIntents, s v2beta1.ClientIntentsStatus) error {
	obj := &v2beta1.ClientIntents{TypeMeta: metav1.TypeMeta{APIVersion: v2beta1.GroupVersion.String(), Kind: "ClientIntents"}, ObjectMeta: metav1.ObjectMeta{Name: ci.Name, Namespace: ci.Namespace}, Status: s}
	return c.Status().Patch(ctx, obj, client.Apply, client.FieldOwner("intentguard-status"), client.ForceOwnership)
}

// updateStatus replaces the status by a PUT of the object read.
func updateStatus(ctx context.Context, c client.Client, ci *v2beta1.ClientIntents, s v2beta1.ClientIntentsStatus) error {
	ci.Status = s
	return c.Status().Update(ctx, ci)
}

// dropValidationRules removes every x-kubernetes-validations rule from the ClientIntents
// CRD and waits until the API server serves the result.
func dropValidationRules(ctx context.Context, c client.Client) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, types.NamespacedName{Name: "clientintents.k8s.otterize.com"}, &crd); err != nil {
		return fmt.Errorf("reading the ClientIntents CRD: %w", err)
	}
	for i := range crd.Spec.Versions {
		if s := crd.Spec.Versions[i].Schema; s != nil && s.OpenAPIV3Schema != nil {
			strip(s.OpenAPIV3Schema)
		}
	}
	if err := c.Update(ctx, &crd); err != nil {
		return fmt.Errorf("updating the ClientIntents CRD: %w", err)
	}
	// The API server swaps its handler for the CRD asynchronously; a rule it still runs
	// would make the second pass measure the first again.
	time.Sleep(5 * time.Second)
	return nil
}

// openSchema replaces the ClientIntents CRD's schemas by one that accepts any object: what
// a ClientIntents write costs beyond it is what its validation costs.
func openSchema(ctx context.Context, c client.Client) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, types.NamespacedName{Name: "clientintents.k8s.otterize.com"}, &crd); err != nil {
		return fmt.Errorf("reading the ClientIntents CRD: %w", err)
	}
	open := true
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].Schema = &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
			Type: "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"spec":   {Type: "object", XPreserveUnknownFields: &open},
				"status": {Type: "object", XPreserveUnknownFields: &open},
			},
		}}
		crd.Spec.Versions[i].AdditionalPrinterColumns = nil
	}
	if err := c.Update(ctx, &crd); err != nil {
		return fmt.Errorf("updating the ClientIntents CRD: %w", err)
	}
	time.Sleep(5 * time.Second)
	return nil
}

func strip(s *apiextensionsv1.JSONSchemaProps) {
	s.XValidations = nil
	for k, p := range s.Properties {
		strip(&p)
		s.Properties[k] = p
	}
	if s.Items != nil && s.Items.Schema != nil {
		strip(s.Items.Schema)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		strip(s.AdditionalProperties.Schema)
	}
}
