package compile

// The tests of this file check compiled policies with an evaluator that is not ours:
// cyclonus' matcher decides, for every ordered pair of pods of a small in-memory cluster,
// whether the policies allow the call, and the verdict must be the one the intents state.

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// cluster is a small in-memory cluster: namespaces, workloads and their pods, Services,
// and the calls its ClientIntents declare.
type cluster struct {
	namespaces []string
	workloads  map[string][]Workload
	pods       []*clusterPod
	services   map[intent.Server]*corev1.Service
	// ports restricts the calls to a workload server (Services bring their own ports).
	ports map[intent.Server][]networkingv1.NetworkPolicyPort
	calls []declaredCall
	// protected are servers protected even when no client declares a call to them.
	protected []intent.Server
}

// clusterPod is a pod: its labels as its owner set them, and its resolved identity.
type clusterPod struct {
	namespace string
	name      string
	labels    map[string]string
	identity  identity.Identity
}

// declaredCall is one target of one ClientIntents: client -> server.
type declaredCall struct {
	client intent.Ref
	server intent.Server
}

// String names the pod and its identity.
func (p *clusterPod) String() string {
	return fmt.Sprintf("%s/%s (%s)", p.namespace, p.name, p.identity)
}

// newCluster is a cluster with the given namespaces and nothing in them.
func newCluster(namespaces ...string) *cluster {
	return &cluster{
		namespaces: namespaces,
		workloads:  map[string][]Workload{},
		services:   map[intent.Server]*corev1.Service{},
		ports:      map[intent.Server][]networkingv1.NetworkPolicyPort{},
	}
}

// addPod adds a pod with the given labels and identity.
func (c *cluster) addPod(namespace, name string, id identity.Identity, podLabels map[string]string) {
	c.pods = append(c.pods, &clusterPod{namespace: namespace, name: name, labels: maps.Clone(podLabels), identity: id})
}

// controller adds a stable workload (Deployment, StatefulSet, DaemonSet) selecting its pods
// by the given labels, with replicas pods; identityName, when set, is the workload-name
// annotation of its pod template.
func (c *cluster) controller(kind, namespace, name, identityName string, replicas int, kv ...string) {
	selector := matchLabels(kv...)
	c.workloads[namespace] = append(c.workloads[namespace], Workload{Kind: kind, Name: name, Selector: selector})
	id := identity.Identity{Namespace: namespace, Name: name, Kind: kind}
	if identityName != "" {
		id = identity.Identity{Namespace: namespace, Name: identityName}
	}
	for i := 0; i < replicas; i++ {
		podLabels := maps.Clone(selector.MatchLabels)
		podName := fmt.Sprintf("%s-%d", name, i)
		if kind == "Deployment" {
			podLabels["pod-template-hash"] = "5d8f7c"
			podName = fmt.Sprintf("%s-5d8f7c-%d", name, i)
		}
		c.addPod(namespace, podName, id, podLabels)
	}
}

// deployment adds a Deployment selecting its pods by the given labels.
func (c *cluster) deployment(namespace, name string, replicas int, kv ...string) {
	c.controller("Deployment", namespace, name, "", replicas, kv...)
}

// statefulSet adds a StatefulSet selecting its pods by the given labels.
func (c *cluster) statefulSet(namespace, name string, replicas int, kv ...string) {
	c.controller("StatefulSet", namespace, name, "", replicas, kv...)
}

// renamedDeployment adds a Deployment whose pods carry the workload-name annotation.
func (c *cluster) renamedDeployment(namespace, name, identityName string, replicas int, kv ...string) {
	c.controller("Deployment", namespace, name, identityName, replicas, kv...)
}

// job adds a Job (selected by its controller uid, as Kubernetes does) with one pod that
// also carries the given labels.
func (c *cluster) job(namespace, name string, kv ...string) {
	uid := "uid-" + name
	c.workloads[namespace] = append(c.workloads[namespace], Workload{Kind: "Job", Name: name, Selector: matchLabels("batch.kubernetes.io/controller-uid", uid)})
	podLabels := matchLabels(kv...).MatchLabels
	podLabels["batch.kubernetes.io/controller-uid"] = uid
	podLabels["batch.kubernetes.io/job-name"] = name
	c.addPod(namespace, name+"-x7k2p", identity.Identity{Namespace: namespace, Name: name, Kind: "Job"}, podLabels)
}

// barePod adds a pod without owner: its identity is the pod itself.
func (c *cluster) barePod(namespace, name string, kv ...string) {
	c.addPod(namespace, name, identity.Identity{Namespace: namespace, Name: name, Kind: "Pod"}, matchLabels(kv...).MatchLabels)
}

// renamedPod adds a pod whose identity is set by the workload-name annotation.
func (c *cluster) renamedPod(namespace, name, identityName string, kv ...string) {
	c.addPod(namespace, name, identity.Identity{Namespace: namespace, Name: identityName}, matchLabels(kv...).MatchLabels)
}

// service adds a Service selecting pods by the given labels.
func (c *cluster) service(namespace, name string, selector map[string]string, ports ...corev1.ServicePort) {
	c.services[serviceServer(namespace, name)] = &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

// declare records a call as an intents file writes it: client "[Kind:]name.namespace",
// server the same or "service name.namespace".
func (c *cluster) declare(client, server string) {
	c.calls = append(c.calls, declaredCall{client: parseRef(client), server: parseServer(server)})
}

// protect records a server protected with no client declared (a ProtectedService).
func (c *cluster) protect(server string) {
	c.protected = append(c.protected, parseServer(server))
}

// parseRef reads "[Kind:]name.namespace".
func parseRef(s string) intent.Ref {
	var r intent.Ref
	if kind, rest, ok := strings.Cut(s, ":"); ok {
		r.Kind, s = kind, rest
	}
	name, ns, ok := strings.Cut(s, ".")
	if !ok {
		panic("want name.namespace, got " + s)
	}
	r.Name, r.Namespace = name, ns
	return r
}

// parseServer reads "[Kind:]name.namespace" or "service name.namespace".
func parseServer(s string) intent.Server {
	if rest, ok := strings.CutPrefix(s, "service "); ok {
		return intent.Server{Ref: parseRef(rest), Service: true}
	}
	return intent.Server{Ref: parseRef(s)}
}

// servers are the servers to protect: every declared target and every protected server.
func (c *cluster) servers() []intent.Server {
	seen := map[intent.Server]bool{}
	var out []intent.Server
	for _, s := range c.protected {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, call := range c.calls {
		if !seen[call.server] {
			seen[call.server] = true
			out = append(out, call.server)
		}
	}
	sort.Slice(out, func(i, j int) bool { return intent.Less(out[i], out[j]) })
	return out
}

// podsIn returns what SelectPods needs of the pods of a namespace.
func (c *cluster) podsIn(namespace string) []Pod {
	var out []Pod
	for _, p := range c.pods {
		if p.namespace == namespace {
			out = append(out, Pod{Labels: maps.Clone(p.labels), Identity: p.identity})
		}
	}
	return out
}

// applied is what the operator applies to a cluster: the policies, and the labels of
// every pod once the operator added its own.
type applied struct {
	cluster  *cluster
	policies []*networkingv1.NetworkPolicy
	labels   map[*clusterPod]map[string]string
	matcher  *matcher.Policy
}

// enforce compiles the cluster's intents as the operator does: one policy per server,
// selections from SelectPods, and operator labels on the pods of identities selected by
// label.
func (c *cluster) enforce() *applied {
	e := &applied{cluster: c, labels: map[*clusterPod]map[string]string{}}
	for _, p := range c.pods {
		e.labels[p] = maps.Clone(p.labels)
		if e.labels[p] == nil {
			e.labels[p] = map[string]string{}
		}
	}
	selectRef := func(r intent.Ref) *metav1.LabelSelector {
		sel := SelectPods(r, c.workloads[r.Namespace], c.podsIn(r.Namespace))
		if sel.ByLabel {
			for _, p := range c.pods {
				if !r.Matches(p.identity) {
					continue
				}
				for k, v := range PodLabels(r) {
					if old, ok := e.labels[p][k]; ok && old != v {
						panic(fmt.Sprintf("pod %s would need %s=%s and %s=%s", p, k, old, k, v))
					}
					e.labels[p][k] = v
				}
			}
		}
		return sel.Selector
	}
	for _, s := range c.servers() {
		in := Input{Server: s}
		in.DNSPorts = ClusterDNS{}.PortsFor(s, nil)
		if s.Service {
			if svc := c.services[s]; svc != nil {
				in.Pods = &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
				in.Ports = ServicePorts(svc)
			}
		} else {
			in.Pods = selectRef(s.Ref)
			in.Ports = c.ports[s]
		}
		for _, call := range c.calls {
			if call.server == s {
				in.Clients = append(in.Clients, Client{Ref: call.client, Pods: selectRef(call.client)})
			}
		}
		if p := Compile(in); p != nil {
			e.policies = append(e.policies, p)
		}
	}
	e.matcher = matcher.BuildNetworkPolicies(true, e.policies)
	return e
}

// probe is the port a call is made on, as the destination pod's container declares it.
type probe struct {
	port     int
	name     string
	protocol corev1.Protocol
}

// httpProbe is a call on the container port 80 named http.
var httpProbe = probe{port: 80, name: "http", protocol: corev1.ProtocolTCP}

// String renders the probe as protocol/port(name).
func (p probe) String() string { return fmt.Sprintf("%s/%d(%s)", p.protocol, p.port, p.name) }

// trafficPeer describes a pod to the evaluator, with the labels it carries once enforced.
func (e *applied) trafficPeer(p *clusterPod) *matcher.TrafficPeer {
	return &matcher.TrafficPeer{Internal: &matcher.InternalPeer{
		PodLabels:       e.labels[p],
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": p.namespace},
		Namespace:       p.namespace,
	}}
}

// allows reports whether the policies let src call dst, according to cyclonus.
func (e *applied) allows(src, dst *clusterPod, pr probe) bool {
	return e.matcher.IsTrafficAllowed(&matcher.Traffic{
		Source:           e.trafficPeer(src),
		Destination:      e.trafficPeer(dst),
		ResolvedPort:     pr.port,
		ResolvedPortName: pr.name,
		Protocol:         pr.protocol,
	}).IsAllowed()
}

// covers reports whether the server's policy is meant to protect the pod: a workload
// server covers the pods of its identity, a Service the pods its selector picks.
func (c *cluster) covers(s intent.Server, p *clusterPod) bool {
	if !s.Service {
		return s.Ref.Matches(p.identity)
	}
	svc := c.services[s]
	return svc != nil && len(svc.Spec.Selector) > 0 && p.namespace == s.Namespace &&
		labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.labels))
}

// serverPorts are the ports a declared call to the server may use; empty means all.
func (c *cluster) serverPorts(s intent.Server) []networkingv1.NetworkPolicyPort {
	if s.Service {
		if svc := c.services[s]; svc != nil {
			return ServicePorts(svc)
		}
		return nil
	}
	return c.ports[s]
}

// portOpen reports whether a call on pr is within ports (empty means every port).
func portOpen(ports []networkingv1.NetworkPolicyPort, pr probe) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != pr.protocol {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String && p.Port.StrVal == pr.name:
			return true
		case p.Port.Type == intstr.Int && p.EndPort == nil && int(p.Port.IntVal) == pr.port:
			return true
		case p.Port.Type == intstr.Int && p.EndPort != nil && int(p.Port.IntVal) <= pr.port && pr.port <= int(*p.EndPort):
			return true
		}
	}
	return false
}

// intended is the verdict the intents state for a call from src to dst: a pod that no
// server covers is not protected and takes every call; a protected pod takes the calls of
// the clients that declared a call to a server covering it, on that server's ports.
func (c *cluster) intended(src, dst *clusterPod, pr probe) (bool, string) {
	protected := false
	for _, s := range c.servers() {
		if !c.covers(s, dst) {
			continue
		}
		protected = true
		for _, call := range c.calls {
			if call.server == s && call.client.Matches(src.identity) && portOpen(c.serverPorts(s), pr) {
				return true, fmt.Sprintf("declared %s -> %s", call.client, s)
			}
		}
	}
	if !protected {
		return true, "destination not protected"
	}
	return false, "no declared call"
}

// mismatches lists every ordered pair of pods (a pod calling itself included) whose
// verdict differs from the intended one, and every invalid selector in the policies.
func (e *applied) mismatches(pr probe) []string {
	var out []string
	for _, src := range e.cluster.pods {
		for _, dst := range e.cluster.pods {
			want, why := e.cluster.intended(src, dst, pr)
			if got := e.allows(src, dst, pr); got != want {
				out = append(out, fmt.Sprintf("%s -> %s on %s: allowed=%v, want %v (%s)", src, dst, pr, got, want, why))
			}
		}
	}
	for _, p := range e.policies {
		for _, err := range validatePolicySelectors(p) {
			out = append(out, fmt.Sprintf("policy %s/%s: %v", p.Namespace, p.Name, err))
		}
	}
	return out
}

// validatePolicySelectors validates every selector of a policy as the API server would.
func validatePolicySelectors(p *networkingv1.NetworkPolicy) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	errs := metav1validation.ValidateLabelSelector(&p.Spec.PodSelector, opts, field.NewPath("spec", "podSelector"))
	for i, r := range p.Spec.Ingress {
		for j, peer := range r.From {
			path := field.NewPath("spec", "ingress").Index(i).Child("from").Index(j)
			errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, path.Child("podSelector"))...)
			errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, path.Child("namespaceSelector"))...)
		}
	}
	return errs
}

// describe renders the cluster and its enforcement for failure messages.
func (e *applied) describe() string {
	var b strings.Builder
	c := e.cluster
	fmt.Fprintf(&b, "namespaces: %v\n", c.namespaces)
	for _, ns := range c.namespaces {
		for _, w := range c.workloads[ns] {
			fmt.Fprintf(&b, "workload %s/%s/%s selector %v\n", w.Kind, ns, w.Name, selectorString(w.Selector))
		}
	}
	for _, p := range c.pods {
		fmt.Fprintf(&b, "pod %s labels %v enforced labels %v\n", p, p.labels, e.labels[p])
	}
	var services []string
	for s, svc := range c.services {
		services = append(services, fmt.Sprintf("%s selector %v ports %v\n", s, svc.Spec.Selector, svc.Spec.Ports))
	}
	sort.Strings(services)
	b.WriteString(strings.Join(services, ""))
	for _, call := range c.calls {
		fmt.Fprintf(&b, "declared %s -> %s\n", call.client, call.server)
	}
	for _, s := range c.protected {
		fmt.Fprintf(&b, "protected %s\n", s)
	}
	for _, p := range e.policies {
		j, _ := json.Marshal(p.Spec)
		fmt.Fprintf(&b, "policy %s/%s: %s\n", p.Namespace, p.Name, j)
	}
	return b.String()
}

// selectorString renders a selector, nil included.
func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "<nil>"
	}
	return metav1.FormatLabelSelector(s)
}

// assertOnlyDeclaredCallsAllowed checks every ordered pair of pods on the probes.
func assertOnlyDeclaredCallsAllowed(t *testing.T, e *applied, probes ...probe) {
	t.Helper()
	if len(probes) == 0 {
		probes = []probe{httpProbe}
	}
	var bad []string
	for _, pr := range probes {
		bad = append(bad, e.mismatches(pr)...)
	}
	if len(bad) > 0 {
		t.Errorf("%d verdicts differ from the intents:\n%s\ncluster:\n%s", len(bad), strings.Join(bad, "\n"), e.describe())
	}
}

// podsOf returns the pods of an identity written "Kind/namespace/name" (an empty kind for
// identities from the annotation), failing when there are none.
func (e *applied) podsOf(t *testing.T, id string) []*clusterPod {
	t.Helper()
	var out []*clusterPod
	for _, p := range e.cluster.pods {
		if p.identity.String() == id {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no pod of %s in the cluster", id)
	}
	return out
}

// mustAllow fails unless every pod of identity from can call every pod of identity to.
func (e *applied) mustAllow(t *testing.T, from, to string, probes ...probe) {
	t.Helper()
	e.mustBe(t, true, from, to, probes)
}

// mustDeny fails unless no pod of identity from can call a pod of identity to.
func (e *applied) mustDeny(t *testing.T, from, to string, probes ...probe) {
	t.Helper()
	e.mustBe(t, false, from, to, probes)
}

// mustBe fails unless every call from a pod of from to a pod of to has the wanted verdict.
func (e *applied) mustBe(t *testing.T, want bool, from, to string, probes []probe) {
	t.Helper()
	if len(probes) == 0 {
		probes = []probe{httpProbe}
	}
	for _, pr := range probes {
		for _, src := range e.podsOf(t, from) {
			for _, dst := range e.podsOf(t, to) {
				if got := e.allows(src, dst, pr); got != want {
					t.Errorf("%s -> %s on %s: allowed=%v, want %v\n%s", src, dst, pr, got, want, e.describe())
				}
			}
		}
	}
}

// policyFor returns the policy protecting the server, failing when there is none.
func (e *applied) policyFor(t *testing.T, server string) *networkingv1.NetworkPolicy {
	t.Helper()
	s := parseServer(server)
	for _, p := range e.policies {
		if p.Namespace == s.Namespace && p.Name == PolicyName(s) {
			return p
		}
	}
	t.Fatalf("no policy protects %s", s)
	return nil
}

const tutorial = "otterize-tutorial-npol"

// tutorialCluster is the network policy tutorial: a server and two would-be clients.
func tutorialCluster() *cluster {
	c := newCluster(tutorial)
	c.deployment(tutorial, "server", 1, "app", "server")
	c.deployment(tutorial, "client", 1, "app", "client")
	c.deployment(tutorial, "client-other", 1, "app", "client-other")
	c.service(tutorial, "server", map[string]string{"app": "server"}, corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)})
	return c
}

func TestTutorialOnlyTheDeclaredClientReachesTheServer(t *testing.T) {
	for _, target := range []string{"server." + tutorial, "Deployment:server." + tutorial, "service server." + tutorial} {
		t.Run(target, func(t *testing.T) {
			c := tutorialCluster()
			c.declare("client."+tutorial, target)
			e := c.enforce()

			e.mustAllow(t, "Deployment/"+tutorial+"/client", "Deployment/"+tutorial+"/server")
			e.mustDeny(t, "Deployment/"+tutorial+"/client-other", "Deployment/"+tutorial+"/server")
			e.mustAllow(t, "Deployment/"+tutorial+"/server", "Deployment/"+tutorial+"/client")
			e.mustAllow(t, "Deployment/"+tutorial+"/client-other", "Deployment/"+tutorial+"/client")
			assertOnlyDeclaredCallsAllowed(t, e)

			// The Deployments' own selectors are exact: no pod needs the operator's labels.
			p := e.policyFor(t, target)
			if got := metav1.FormatLabelSelector(&p.Spec.PodSelector); got != "app=server" {
				t.Errorf("server selected by %s, want app=server", got)
			}
			if got := metav1.FormatLabelSelector(p.Spec.Ingress[0].From[0].PodSelector); got != "app=client" {
				t.Errorf("client selected by %s, want app=client", got)
			}
		})
	}
}

func TestCrossNamespaceCallsAdmitOnlyTheDeclaringNamespace(t *testing.T) {
	c := newCluster("shop", "staging", "payments")
	c.deployment("shop", "frontend", 2, "app", "frontend")
	c.deployment("staging", "frontend", 1, "app", "frontend")
	c.deployment("payments", "ledger", 2, "app", "ledger")
	c.deployment("payments", "audit", 1, "app", "audit")
	c.declare("frontend.shop", "ledger.payments")
	c.declare("ledger.payments", "Deployment:audit.payments")
	e := c.enforce()

	e.mustAllow(t, "Deployment/shop/frontend", "Deployment/payments/ledger")
	e.mustDeny(t, "Deployment/staging/frontend", "Deployment/payments/ledger")
	e.mustDeny(t, "Deployment/payments/audit", "Deployment/payments/ledger")
	e.mustAllow(t, "Deployment/payments/ledger", "Deployment/payments/audit")
	e.mustDeny(t, "Deployment/shop/frontend", "Deployment/payments/audit")
	assertOnlyDeclaredCallsAllowed(t, e)
}

func TestKindedTargetsProtectOnlyThatKind(t *testing.T) {
	newDataCluster := func() *cluster {
		c := newCluster("data")
		c.deployment("data", "db", 1, "app", "db-admin")
		c.statefulSet("data", "db", 2, "app", "db")
		c.deployment("data", "api", 1, "app", "api")
		c.deployment("data", "reporting", 1, "app", "reporting")
		return c
	}
	t.Run("each kind has its own clients", func(t *testing.T) {
		c := newDataCluster()
		c.declare("api.data", "StatefulSet:db.data")
		c.declare("reporting.data", "Deployment:db.data")
		e := c.enforce()
		e.mustAllow(t, "Deployment/data/api", "StatefulSet/data/db")
		e.mustDeny(t, "Deployment/data/api", "Deployment/data/db")
		e.mustAllow(t, "Deployment/data/reporting", "Deployment/data/db")
		e.mustDeny(t, "Deployment/data/reporting", "StatefulSet/data/db")
		assertOnlyDeclaredCallsAllowed(t, e)
	})
	t.Run("only the named kind is protected", func(t *testing.T) {
		c := newDataCluster()
		c.declare("api.data", "StatefulSet:db.data")
		e := c.enforce()
		e.mustDeny(t, "Deployment/data/reporting", "StatefulSet/data/db")
		e.mustAllow(t, "Deployment/data/reporting", "Deployment/data/db")
		assertOnlyDeclaredCallsAllowed(t, e)
	})
	t.Run("an unkinded target covers every kind of that name", func(t *testing.T) {
		c := newDataCluster()
		c.declare("api.data", "db.data")
		e := c.enforce()
		e.mustAllow(t, "Deployment/data/api", "StatefulSet/data/db")
		e.mustAllow(t, "Deployment/data/api", "Deployment/data/db")
		e.mustDeny(t, "Deployment/data/reporting", "StatefulSet/data/db")
		e.mustDeny(t, "Deployment/data/reporting", "Deployment/data/db")
		assertOnlyDeclaredCallsAllowed(t, e)
	})
	t.Run("a kinded client admits only that kind", func(t *testing.T) {
		c := newDataCluster()
		c.declare("StatefulSet:db.data", "api.data")
		e := c.enforce()
		e.mustAllow(t, "StatefulSet/data/db", "Deployment/data/api")
		e.mustDeny(t, "Deployment/data/db", "Deployment/data/api")
		assertOnlyDeclaredCallsAllowed(t, e)
	})
}

func TestPodsSharingTheClientsAppLabelStayDenied(t *testing.T) {
	c := newCluster("shop")
	c.deployment("shop", "server", 1, "app", "server")
	c.deployment("shop", "client", 2, "app", "client")
	c.barePod("shop", "debug", "app", "client")
	c.job("shop", "backfill", "app", "client")
	c.deployment("shop", "client-canary", 1, "app", "client", "track", "canary")
	c.declare("client.shop", "server.shop")
	e := c.enforce()

	e.mustAllow(t, "Deployment/shop/client", "Deployment/shop/server")
	e.mustDeny(t, "Pod/shop/debug", "Deployment/shop/server")
	e.mustDeny(t, "Job/shop/backfill", "Deployment/shop/server")
	e.mustDeny(t, "Deployment/shop/client-canary", "Deployment/shop/server")
	assertOnlyDeclaredCallsAllowed(t, e)

	// app=client would admit the impostors: the client must be selected by label.
	peer := e.policyFor(t, "server.shop").Spec.Ingress[0].From[0]
	if peer.PodSelector.MatchLabels[WorkloadLabel] != "client" {
		t.Errorf("client selected by %s, want the operator's label %s", selectorString(peer.PodSelector), WorkloadLabel)
	}
}

func TestServersSharingAnAppLabelAreProtectedSeparately(t *testing.T) {
	c := newCluster("shop")
	c.deployment("shop", "api", 1, "app", "api")
	c.deployment("shop", "api-admin", 1, "app", "api", "role", "admin")
	c.barePod("shop", "api-debug", "app", "api")
	c.deployment("shop", "frontend", 1, "app", "frontend")
	c.deployment("shop", "ops", 1, "app", "ops")
	c.declare("frontend.shop", "api.shop")
	c.declare("ops.shop", "api-admin.shop")
	e := c.enforce()

	e.mustAllow(t, "Deployment/shop/frontend", "Deployment/shop/api")
	e.mustDeny(t, "Deployment/shop/frontend", "Deployment/shop/api-admin")
	e.mustAllow(t, "Deployment/shop/ops", "Deployment/shop/api-admin")
	e.mustDeny(t, "Deployment/shop/ops", "Deployment/shop/api")
	// The debug pod is no server: it stays open.
	e.mustAllow(t, "Deployment/shop/ops", "Pod/shop/api-debug")
	assertOnlyDeclaredCallsAllowed(t, e)
}

func TestRenamedWorkloadsAreKnownByTheirAnnotation(t *testing.T) {
	c := newCluster("shop")
	c.renamedDeployment("shop", "worker-v2", "worker", 2, "app", "worker", "version", "v2")
	c.renamedPod("shop", "worker-manual", "worker", "app", "worker")
	c.deployment("shop", "worker-v3", 1, "app", "worker", "version", "v3")
	c.deployment("shop", "queue", 1, "app", "queue")
	c.renamedDeployment("shop", "api-7", "api", 1, "app", "api")
	c.declare("worker.shop", "queue.shop")
	c.declare("queue.shop", "api.shop")
	e := c.enforce()

	e.mustAllow(t, "/shop/worker", "Deployment/shop/queue")
	e.mustDeny(t, "Deployment/shop/worker-v3", "Deployment/shop/queue")
	e.mustAllow(t, "Deployment/shop/queue", "/shop/api")
	e.mustDeny(t, "/shop/worker", "/shop/api")
	assertOnlyDeclaredCallsAllowed(t, e)
}

func TestLongAndOddIdentityNamesAreSelectedByDigest(t *testing.T) {
	long := strings.Repeat("w", 70)
	c := newCluster("shop")
	c.renamedPod("shop", "legacy", long, "app", "legacy")
	c.renamedPod("shop", "legacy-2", "Legacy_Worker", "app", "legacy")
	c.deployment("shop", "queue", 1, "app", "queue")
	c.declare(long+".shop", "queue.shop")
	e := c.enforce()

	e.mustAllow(t, "/shop/"+long, "Deployment/shop/queue")
	e.mustDeny(t, "/shop/Legacy_Worker", "Deployment/shop/queue")
	assertOnlyDeclaredCallsAllowed(t, e)
}

func TestServiceTargetsAllowTheTargetPortsOnly(t *testing.T) {
	c := newCluster("shop")
	c.deployment("shop", "cart", 2, "app", "cart")
	c.deployment("shop", "frontend", 1, "app", "frontend")
	c.deployment("shop", "crawler", 1, "app", "crawler")
	c.service("shop", "cart", map[string]string{"app": "cart"},
		corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		corev1.ServicePort{Name: "admin", Port: 9000},
		corev1.ServicePort{Name: "stats", Port: 8125, TargetPort: intstr.FromInt32(18125), Protocol: corev1.ProtocolUDP},
	)
	c.declare("frontend.shop", "service cart.shop")
	e := c.enforce()

	httpOn8080 := probe{port: 8080, name: "http", protocol: corev1.ProtocolTCP}
	admin := probe{port: 9000, name: "admin", protocol: corev1.ProtocolTCP}
	stats := probe{port: 18125, name: "stats", protocol: corev1.ProtocolUDP}
	debug := probe{port: 6060, name: "pprof", protocol: corev1.ProtocolTCP}
	statsOverTCP := probe{port: 18125, name: "stats", protocol: corev1.ProtocolTCP}

	e.mustAllow(t, "Deployment/shop/frontend", "Deployment/shop/cart", httpOn8080, admin, stats)
	e.mustDeny(t, "Deployment/shop/frontend", "Deployment/shop/cart", debug, statsOverTCP)
	e.mustDeny(t, "Deployment/shop/crawler", "Deployment/shop/cart", httpOn8080, admin, stats, debug)
	assertOnlyDeclaredCallsAllowed(t, e, httpOn8080, admin, stats, debug, statsOverTCP)
}

func TestWorkloadPortsLimitTheDeclaredCalls(t *testing.T) {
	c := newCluster("shop")
	c.deployment("shop", "cart", 1, "app", "cart")
	c.deployment("shop", "frontend", 1, "app", "frontend")
	c.declare("frontend.shop", "Deployment:cart.shop")
	c.ports[parseServer("Deployment:cart.shop")] = []networkingv1.NetworkPolicyPort{tcp(8080), tcpNamed("grpc")}
	e := c.enforce()

	on8080 := probe{port: 8080, name: "http", protocol: corev1.ProtocolTCP}
	grpc := probe{port: 9090, name: "grpc", protocol: corev1.ProtocolTCP}
	e.mustAllow(t, "Deployment/shop/frontend", "Deployment/shop/cart", on8080, grpc)
	e.mustDeny(t, "Deployment/shop/frontend", "Deployment/shop/cart", httpProbe)
	assertOnlyDeclaredCallsAllowed(t, e, httpProbe, on8080, grpc)
}

func TestClusterDNSStaysReachableByEveryone(t *testing.T) {
	c := newCluster("kube-system", "shop", "monitoring")
	c.deployment("kube-system", "coredns", 2, "k8s-app", "kube-dns")
	c.deployment("shop", "web", 1, "app", "web")
	c.barePod("shop", "debug", "app", "debug")
	c.deployment("monitoring", "prometheus", 1, "app", "prometheus")
	c.declare("prometheus.monitoring", "coredns.kube-system")
	e := c.enforce()

	dnsUDP := probe{port: 53, name: "dns", protocol: corev1.ProtocolUDP}
	dnsTCP := probe{port: 53, name: "dns-tcp", protocol: corev1.ProtocolTCP}
	metrics := probe{port: 9153, name: "metrics", protocol: corev1.ProtocolTCP}
	for _, from := range []string{"Deployment/shop/web", "Pod/shop/debug", "Deployment/monitoring/prometheus", "Deployment/kube-system/coredns"} {
		e.mustAllow(t, from, "Deployment/kube-system/coredns", dnsUDP, dnsTCP)
	}
	e.mustAllow(t, "Deployment/monitoring/prometheus", "Deployment/kube-system/coredns", metrics)
	e.mustDeny(t, "Deployment/shop/web", "Deployment/kube-system/coredns", metrics)
	assertOnlyDeclaredCallsAllowed(t, e, metrics)
}

func TestProtectedServerWithoutClientsTakesNoCalls(t *testing.T) {
	c := newCluster("secrets", "shop")
	c.statefulSet("secrets", "vault", 2, "app", "vault")
	c.deployment("secrets", "unsealer", 1, "app", "unsealer")
	c.deployment("shop", "web", 1, "app", "web")
	c.protect("vault.secrets")
	e := c.enforce()

	e.mustDeny(t, "Deployment/secrets/unsealer", "StatefulSet/secrets/vault")
	e.mustDeny(t, "Deployment/shop/web", "StatefulSet/secrets/vault")
	e.mustDeny(t, "StatefulSet/secrets/vault", "StatefulSet/secrets/vault")
	e.mustAllow(t, "StatefulSet/secrets/vault", "Deployment/shop/web")
	assertOnlyDeclaredCallsAllowed(t, e)
}

func TestTargetsThatDoNotExistProtectNothingElse(t *testing.T) {
	c := newCluster("shop")
	c.deployment("shop", "web", 1, "app", "web")
	c.deployment("shop", "api", 1, "app", "api")
	c.declare("web.shop", "ghost.shop")
	c.declare("ghost.shop", "api.shop")
	c.declare("web.shop", "service missing.shop")
	e := c.enforce()

	e.mustDeny(t, "Deployment/shop/web", "Deployment/shop/api")
	e.mustAllow(t, "Deployment/shop/api", "Deployment/shop/web")
	assertOnlyDeclaredCallsAllowed(t, e)
}
