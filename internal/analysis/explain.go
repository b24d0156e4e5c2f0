package analysis

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Query asks whether From may reach To: on Port (NetworkPolicy), or Topic with
// Operation (Kafka, an intents operation such as produce or consume).
type Query struct {
	From      Endpoint `json:"from"`
	To        Endpoint `json:"to"`
	Port      string   `json:"port,omitempty"`
	Topic     string   `json:"topic,omitempty"`
	Operation string   `json:"operation,omitempty"`
}

// Verdicts of an explanation.
const (
	Allowed = "allowed"
	Denied  = "denied"
	// Mixed is when some pods of From may reach some pods of To and others may not.
	Mixed = "mixed"
	// Unknown is when the enforcement point writes nothing that decides (an invalid
	// KafkaServerConfig, a broker in shadow mode): the broker's own ACLs decide.
	Unknown = "unknown"
)

// Explanation is the answer to a query on one port or topic.
type Explanation struct {
	Query   Query  `json:"query"`
	Point   Point  `json:"point"`
	Verdict string `json:"verdict"`
	// Port is the port evaluated (NetworkPolicy).
	Port string `json:"port,omitempty"`
	// Chain is the path from intent to generated object to rule that decides it.
	Chain []string `json:"chain"`
	// Missing says, for a denial, what the intents lack.
	Missing []string `json:"missing,omitempty"`
	// Default is true when no object of the point applies: the cluster's default decides.
	Default bool `json:"default"`
}

// ParseEndpoint reads name.namespace, ns/name or ns/name[Kind].
func ParseEndpoint(s string) (Endpoint, error) {
	if ns, rest, ok := strings.Cut(s, "/"); ok {
		e := Endpoint{Namespace: ns, Name: rest}
		if name, kind, ok := strings.Cut(rest, "["); ok {
			if !strings.HasSuffix(kind, "]") {
				return Endpoint{}, fmt.Errorf("%q: a kind is written ns/name[Kind]", s)
			}
			e.Name, e.Kind = name, strings.TrimSuffix(kind, "]")
		}
		if e.Namespace == "" || e.Name == "" {
			return Endpoint{}, fmt.Errorf("%q: want name.namespace, ns/name or ns/name[Kind]", s)
		}
		return e, nil
	}
	name, ns, ok := strings.Cut(s, ".")
	if !ok || name == "" || ns == "" {
		return Endpoint{}, fmt.Errorf("%q: want name.namespace, ns/name or ns/name[Kind]", s)
	}
	return Endpoint{Namespace: ns, Name: name}, nil
}

// Explain answers a query: for Kafka when it names a topic, else for NetworkPolicies on
// the query's port or, without one, on every port of the Services in front of To.
func (r *Result) Explain(q Query) ([]Explanation, error) {
	if q.Topic != "" || q.Operation != "" {
		if q.Topic == "" || q.Operation == "" {
			return nil, fmt.Errorf("a Kafka question needs both a topic and an operation")
		}
		e, err := r.explainKafka(q)
		if err != nil {
			return nil, err
		}
		return []Explanation{e}, nil
	}
	es, err := r.explainNetwork(q)
	mesh, ok := r.explainIstio(q)
	switch {
	case err != nil && !ok:
		return nil, err
	case err != nil:
		// The mesh's answer stands on its own (a client without pods in the inputs is
		// still judged by what it declares): give it, and say why the other is missing.
		es = []Explanation{{Query: q, Point: NetworkPolicy, Verdict: Unknown, Chain: []string{"cannot be answered: " + err.Error()}}}
	}
	if ok {
		es = append(es, mesh)
	}
	return es, nil
}

// matches reports whether a pod's identity is the endpoint.
func (e Endpoint) matches(p facts.Pod) bool {
	return p.Identity.Matches(e.Namespace, e.Name, e.Kind)
}

// podsOf returns the pods of an endpoint: a Service's selected pods, or an identity's.
func (r *Result) podsOf(e Endpoint) ([]facts.Pod, error) {
	var out []facts.Pod
	if e.Kind == "Service" {
		svc := r.service(e.Namespace, e.Name)
		if svc == nil || len(svc.Spec.Selector) == 0 {
			return nil, fmt.Errorf("%s: no Service with a pod selector in the inputs", e)
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, p := range r.Snapshot.Pods(e.Namespace) {
			if sel.Matches(labels.Set(p.Meta.Labels)) {
				out = append(out, p)
			}
		}
	} else {
		for _, p := range r.Snapshot.Pods(e.Namespace) {
			if e.matches(p) {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no pods in the inputs (add its workload's manifest, or use a snapshot of the cluster)", e)
	}
	return out, nil
}

func (r *Result) service(namespace, name string) *corev1.Service {
	for _, svc := range r.Snapshot.Services(namespace) {
		if svc.Name == name {
			return svc
		}
	}
	return nil
}

// PodLabelsOf returns a pod's labels as they would be once the operator labelled it:
// the operator's labels it holds now give way to those it would want.
func (r *Result) PodLabelsOf(p facts.Pod) map[string]string {
	out := map[string]string{}
	for k, v := range p.Meta.Labels {
		if k != compile.WorkloadLabel && k != compile.WorkloadKindLabel {
			out[k] = v
		}
	}
	for k, v := range r.PodLabels[p.Meta.Namespace+"/"+p.Meta.Name] {
		out[k] = v
	}
	return out
}

// EndpointPod returns a pod as the evaluator sees it once the operator has acted: with
// the labels it would carry, its namespace's labels and its container ports.
func (r *Result) EndpointPod(p facts.Pod) connectivity.Pod {
	var nsLabels map[string]string
	if ns := r.Snapshot.Namespace(p.Meta.Namespace); ns != nil {
		nsLabels = ns.Labels
	}
	return connectivity.NewPod(p.Meta.Namespace, p.Meta.Name, p.Identity.Name+"."+p.Identity.Namespace, r.PodLabelsOf(p), nsLabels).
		WithContainerPorts(r.Snapshot.ContainerPorts(p.Meta))
}

// Matrix is the verdict between every two pods of the snapshot on port, once the
// operator has acted: the pods carry the labels it would put on them, under the
// policies in force afterwards (EnforcedPolicies).
func (r *Result) Matrix(port connectivity.Port) *connectivity.Matrix {
	var pods []connectivity.Pod
	for _, p := range r.Snapshot.AllPods() {
		pods = append(pods, r.EndpointPod(p))
	}
	return connectivity.New(pods, r.EnforcedPolicies(), port)
}

// EnforcedPolicies are the NetworkPolicies in force once the operator has acted: the
// inputs' own policies (the operator's replaced by what it would write) and the
// operator's.
func (r *Result) EnforcedPolicies() []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for i := range r.Snapshot.NetworkPolicies() {
		np := &r.Snapshot.NetworkPolicies()[i]
		if np.Labels[ownership.Label] != ownership.IntentsOperator {
			out = append(out, np)
		}
	}
	return append(out, r.Policies...)
}

// parsePort reads 8080, TCP/8080, UDP/53 or a port name.
func parsePort(s string) connectivity.Port {
	proto, port, ok := strings.Cut(s, "/")
	if !ok {
		proto, port = "TCP", s
	}
	p := connectivity.Port{Protocol: corev1.Protocol(strings.ToUpper(proto))}
	if n, err := strconv.Atoi(port); err == nil {
		p.Number = n
	} else {
		p.Name = port
	}
	return p
}

func portString(p connectivity.Port) string {
	if p.Name != "" {
		return string(p.Protocol) + "/" + p.Name
	}
	return fmt.Sprintf("%s/%d", p.Protocol, p.Number)
}

// servicePorts returns the target ports of the Services in front of pods.
func (r *Result) servicePorts(pods []facts.Pod) []string {
	var out []string
	for _, svc := range r.Snapshot.Services(pods[0].Meta.Namespace) {
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pods[0].Meta.Labels)) {
			continue
		}
		for _, p := range compile.ServicePorts(svc) {
			if name := PortName(p); !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (r *Result) explainNetwork(q Query) ([]Explanation, error) {
	src, err := r.podsOf(q.From)
	if err != nil {
		return nil, err
	}
	dst, err := r.podsOf(q.To)
	if err != nil {
		return nil, err
	}
	ports := []string{q.Port}
	if q.Port == "" {
		if ports = r.servicePorts(dst); len(ports) == 0 {
			return nil, fmt.Errorf("%s: no Service port to evaluate; give --port", q.To)
		}
	}
	var out []Explanation
	for _, p := range ports {
		out = append(out, r.explainPort(q, src, dst, parsePort(p)))
	}
	return out, nil
}

func (r *Result) explainPort(q Query, src, dst []facts.Pod, port connectivity.Port) Explanation {
	e := Explanation{Query: q, Point: NetworkPolicy, Port: portString(port)}
	policies := r.EnforcedPolicies()
	var pods []connectivity.Pod
	for _, p := range append(slices.Clone(src), dst...) {
		pods = append(pods, r.EndpointPod(p))
	}
	m := connectivity.New(pods, policies, port)
	allowed, denied := 0, 0
	for i := range src {
		for j := range dst {
			if src[i].Meta.Name == dst[j].Meta.Name && src[i].Meta.Namespace == dst[j].Meta.Namespace {
				continue
			}
			if m.Allowed(pods[i], pods[len(src)+j]) {
				allowed++
			} else {
				denied++
			}
		}
	}
	switch {
	case denied == 0:
		e.Verdict = Allowed
	case allowed == 0:
		e.Verdict = Denied
	default:
		e.Verdict = Mixed
	}
	srcPod, dstPod := pods[0], pods[len(src)]
	dstLabels := r.PodLabelsOf(dst[0])
	var selecting []*networkingv1.NetworkPolicy
	for _, np := range policies {
		if np.Namespace != dst[0].Meta.Namespace {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil && sel.Matches(labels.Set(dstLabels)) && AppliesToIngress(np) {
			selecting = append(selecting, np)
		}
	}
	if len(selecting) == 0 {
		e.Default = true
		reason := fmt.Sprintf("no NetworkPolicy selects the pods of %s: the cluster's default allows all ingress", q.To.Short())
		if plan := r.shadowed(dst[0]); plan != nil {
			reason = fmt.Sprintf("no NetworkPolicy selects the pods of %s (shadow mode: %s is not enforced): the cluster's default allows all ingress", q.To.Short(), plan.Server)
		}
		e.Chain = []string{reason}
		return e
	}
	for _, np := range selecting {
		plan := r.planOf(np)
		for i := range np.Spec.Ingress {
			one := np.DeepCopy()
			one.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{np.Spec.Ingress[i]}
			if !connectivity.New(pods, []*networkingv1.NetworkPolicy{one}, port).Allowed(srcPod, dstPod) {
				continue
			}
			if plan == nil {
				e.Chain = append(e.Chain, fmt.Sprintf("NetworkPolicy %s/%s (not the operator's) ingress rule %d admits it", np.Namespace, np.Name, i+1))
				continue
			}
			for _, ci := range r.declaring(plan.Intents, q.From) {
				e.Chain = append(e.Chain, fmt.Sprintf("%s declares %s", ci, plan.Server))
			}
			e.Chain = append(e.Chain,
				fmt.Sprintf("-> NetworkPolicy %s/%s (the operator's, for %s)", np.Namespace, np.Name, plan.Server),
				fmt.Sprintf("-> ingress rule %d: %s", i+1, describeRule(np.Spec.Ingress[i])))
		}
	}
	if e.Verdict == Allowed {
		return e
	}
	for _, np := range selecting {
		plan := r.planOf(np)
		if plan == nil {
			e.Chain = append(e.Chain, fmt.Sprintf("NetworkPolicy %s/%s (not the operator's) selects the pods of %s", np.Namespace, np.Name, q.To.Short()))
			continue
		}
		e.Chain = append(e.Chain, fmt.Sprintf("NetworkPolicy %s/%s (the operator's, for %s) selects the pods of %s", np.Namespace, np.Name, plan.Server, q.To.Short()))
		declared := r.declaring(plan.Intents, q.From)
		switch {
		case len(declared) == 0:
			e.Missing = append(e.Missing, fmt.Sprintf("%s is protected; %s declares no call to %s", q.To.Short(), q.From.Short(), plan.Server))
		default:
			var ports []string
			for _, rule := range np.Spec.Ingress {
				if len(rule.From) > 0 {
					ports = append(ports, portNames(rule.Ports)...)
				}
			}
			e.Missing = append(e.Missing, fmt.Sprintf("%s declares a call to %s on %s, not %s: %s", q.From.Short(), plan.Server, strings.Join(ports, ", "), e.Port, strings.Join(declared, "; ")))
		}
	}
	return e
}

// AppliesToIngress reports whether a policy applies to ingress.
func AppliesToIngress(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// planOf returns the plan that wrote a policy, or nil for a policy not the operator's.
func (r *Result) planOf(np *networkingv1.NetworkPolicy) *compile.Plan {
	for i := range r.Plans {
		if p := r.Plans[i].Policy; p != nil && p.Namespace == np.Namespace && p.Name == np.Name {
			return &r.Plans[i]
		}
	}
	return nil
}

// shadowed returns the plan of a server in front of the pod that the roll-out settings
// leave unenforced, if any.
func (r *Result) shadowed(pod facts.Pod) *compile.Plan {
	for i := range r.Plans {
		p := &r.Plans[i]
		if p.Enforced || !p.Exists || p.Server.Namespace != pod.Meta.Namespace {
			continue
		}
		if p.Server.Matches(pod.Identity) && !p.Server.Service {
			return p
		}
		if p.Server.Service {
			if svc := r.service(p.Server.Namespace, p.Server.Name); svc != nil && len(svc.Spec.Selector) > 0 &&
				labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Meta.Labels)) {
				return p
			}
		}
	}
	return nil
}

// declaring returns the ClientIntents among intents whose client is the endpoint.
func (r *Result) declaring(intents []v2beta1.ClientIntents, from Endpoint) []string {
	var out []string
	for i := range intents {
		c := intent.Client(&intents[i])
		if c.Namespace == from.Namespace && c.Name == from.Name && (from.Kind == "" || c.Kind == "" || c.Kind == from.Kind) {
			out = append(out, r.named(&intents[i]))
		}
	}
	return out
}

// describeRule renders an ingress rule: its peers and ports.
func describeRule(rule networkingv1.NetworkPolicyIngressRule) string {
	var peers []string
	for _, p := range rule.From {
		var parts []string
		if p.NamespaceSelector != nil {
			parts = append(parts, "namespace "+metav1.FormatLabelSelector(p.NamespaceSelector))
		}
		if p.PodSelector != nil {
			parts = append(parts, "pods "+metav1.FormatLabelSelector(p.PodSelector))
		}
		peers = append(peers, strings.Join(parts, ", "))
	}
	from := "from anyone"
	if len(peers) > 0 {
		from = "from " + strings.Join(peers, "; ")
	}
	return from + " on " + strings.Join(portNames(rule.Ports), ", ")
}
