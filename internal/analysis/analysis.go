// Package analysis computes, from a snapshot of a cluster's objects, what the operator
// would make of them: per enforcement point the objects it would write (NetworkPolicies,
// Kafka ACLs) with the very compilers it runs, the access those objects grant as tuples,
// the labels it would put on pods, and allowed/denied verdicts between pods evaluated
// independently (cyclonus' matcher) on the predicted result.
package analysis

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/kafka/acl"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Point names an enforcement point.
type Point string

// The enforcement points the analysis covers.
const (
	NetworkPolicy Point = "networkpolicy"
	Kafka         Point = "kafka"
	Istio         Point = "istio"
)

// Endpoint is one end of an access: a workload identity, a Service, or every client.
type Endpoint struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Kind is the workload kind, "Service", or empty for an identity named without one.
	Kind string `json:"kind,omitempty"`
}

// Anyone is the endpoint of access granted to every client.
var Anyone = Endpoint{Name: "*"}

// String renders the endpoint as ns/name[Kind] (ns/name without a kind, * for anyone).
func (e Endpoint) String() string {
	if e == Anyone {
		return "*"
	}
	s := e.Namespace + "/" + e.Name
	if e.Kind != "" {
		s += "[" + e.Kind + "]"
	}
	return s
}

// Short renders the endpoint as intents files name it: name.namespace.
func (e Endpoint) Short() string {
	if e == Anyone {
		return "*"
	}
	return e.Name + "." + e.Namespace
}

func endpointOf(ref intent.Ref) Endpoint {
	return Endpoint{Namespace: ref.Namespace, Name: ref.Name, Kind: ref.Kind}
}

// ServerEndpoint is the endpoint of a server: its Service, or its workload identity.
func ServerEndpoint(s intent.Server) Endpoint {
	if s.Service {
		return Endpoint{Namespace: s.Namespace, Name: s.Name, Kind: "Service"}
	}
	return endpointOf(s.Ref)
}

// Tuple is one access an enforcement point's objects grant.
type Tuple struct {
	Point Point    `json:"point"`
	From  Endpoint `json:"from"`
	To    Endpoint `json:"to"`
	// Port is "TCP/8080" (protocol/port or port name), or "any" (NetworkPolicy only).
	Port string `json:"port,omitempty"`
	// ContainerPort is, for a Port that is a name, "TCP/8080": the number every pod of
	// To gives that name, which the access is to (empty when the pods disagree or have
	// none of that name).
	ContainerPort string `json:"containerPort,omitempty"`
	// Topic and Operation are the Kafka resource and operation (Kafka only); a Topic
	// ending in * is a prefix, and Operation is the ACL operation.
	Topic     string `json:"topic,omitempty"`
	Operation string `json:"operation,omitempty"`
	// Object is the object that grants it: the NetworkPolicy's namespace/name, or the
	// KafkaServerConfig's.
	Object string `json:"object"`
	// Intents are the ClientIntents (namespace/name) that declare it.
	Intents []string `json:"intents,omitempty"`
}

// Key identifies the access, whatever grants it and however the policy writes its port:
// a named port is keyed by the number it resolves to.
func (t Tuple) Key() string {
	port := t.Port
	if t.ContainerPort != "" {
		port = t.ContainerPort
	}
	return strings.Join([]string{string(t.Point), t.From.String(), t.To.String(), port, t.Topic, t.Operation}, "|")
}

// compareTuples orders tuples by point, from, to, then what is accessed.
func compareTuples(a, b Tuple) int {
	return cmp.Or(cmp.Compare(a.Point, b.Point), cmp.Compare(a.From.String(), b.From.String()), cmp.Compare(a.To.String(), b.To.String()),
		cmp.Compare(a.Port, b.Port), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Operation, b.Operation))
}

// What renders the accessed resource: the port, or topic and operation.
func (t Tuple) What() string {
	switch t.Point {
	case Kafka:
		return t.Topic + " " + t.Operation
	case Istio:
		return t.Operation
	}
	if _, n, ok := strings.Cut(t.ContainerPort, "/"); ok {
		return t.Port + " (" + n + ")"
	}
	return t.Port
}

// String renders the tuple on one line.
func (t Tuple) String() string {
	return fmt.Sprintf("%s -> %s %s", t.From, t.To, t.What())
}

// Broker is the Kafka point's outcome for one KafkaServerConfig.
type Broker struct {
	// Config is the KafkaServerConfig's namespace/name.
	Config string
	// Server is the broker workload.
	Server Endpoint
	// Enforced is false in shadow mode when no ProtectedService names the broker: the
	// operator then writes no ACL.
	Enforced bool
	// ACLs are the ACLs the operator would hold on the broker (none when not enforced).
	ACLs []acl.ACL
	// Result is the compiler's result (per ClientIntents principal and error).
	Result acl.Result
	// Err is why the config cannot be compiled (then nothing is changed on the broker),
	// or why the operator ignores it.
	Err error
	// compiler is the server the ACLs are compiled for.
	compiler acl.Server
}

// Result is what the operator would make of one snapshot.
type Result struct {
	Snapshot *snapshot.Snapshot
	// Plans are the NetworkPolicy point's plans, one per server, in server order.
	Plans []compile.Plan
	// Policies are the NetworkPolicies the operator would hold, by namespace and name.
	Policies []*networkingv1.NetworkPolicy
	// Brokers are the Kafka point's outcomes, by config.
	Brokers []Broker
	// Istio are the Istio point's outcomes, one per server, when Options.Istio is set.
	Istio []IstioServer
	// Tuples are the accesses the objects grant, sorted.
	Tuples []Tuple
	// PodLabels are the operator labels each pod ("namespace/name") would carry, as the
	// operator's labeller decides them; it applies them before writing a policy that
	// selects the pod's identity by them, and to other pods when an event about them
	// comes.
	PodLabels map[string]map[string]string

	planner compile.Planner
	origin  func(client.Object) string
}

// named names a ClientIntents in an explanation, with where it was read.
func (r *Result) named(ci *v2beta1.ClientIntents) string {
	s := "ClientIntents " + ci.Namespace + "/" + ci.Name
	if r.origin != nil {
		if at := r.origin(ci); at != "" {
			s += " from " + at
		}
	}
	return s
}

// Options are the operator settings the analysis assumes.
type Options struct {
	// Enforcement are the roll-out settings (the operator's default: everything enforced).
	Enforcement enforcement.Options
	// Origin, when set, says where an object was read (a file and line), for
	// explanations to point at.
	Origin func(client.Object) string
	// Istio, when set, runs the Istio point's compiler too, with these settings.
	Istio *IstioOptions
	// Namespace, when set, plans the NetworkPolicies of that namespace's servers only:
	// the result then holds no policy, plan or access of other namespaces.
	Namespace string
}

// Analyze runs the operator's compilers over the snapshot.
func Analyze(ctx context.Context, snap *snapshot.Snapshot, opts Options) (*Result, error) {
	r := &Result{Snapshot: snap, planner: compile.Planner{Facts: snap, Options: opts.Enforcement}.ForOneReconcile(), origin: opts.Origin}
	for _, server := range servers(snap) {
		if opts.Namespace != "" && server.Namespace != opts.Namespace {
			continue
		}
		plan, err := r.planner.Plan(ctx, server)
		if err != nil {
			return nil, fmt.Errorf("planning the NetworkPolicy of %s: %w", server, err)
		}
		r.Plans = append(r.Plans, plan)
		if plan.Policy != nil {
			r.Policies = append(r.Policies, plan.Policy)
			r.Tuples = append(r.Tuples, r.withContainerPorts(policyTuples(plan))...)
		}
	}
	slices.SortFunc(r.Policies, func(a, b *networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	r.Brokers = brokers(snap, opts.Enforcement)
	for _, b := range r.Brokers {
		r.Tuples = append(r.Tuples, b.tuples(snap)...)
	}
	slices.SortFunc(r.Tuples, compareTuples)
	labels, err := podLabels(ctx, snap, r.planner)
	if err != nil {
		return nil, err
	}
	r.PodLabels = labels
	if opts.Istio != nil {
		if err := r.analyzeIstio(ctx, *opts.Istio); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// servers returns every server the NetworkPolicy point plans for: those the intents
// target and those ProtectedServices name.
func servers(snap *snapshot.Snapshot) []intent.Server {
	seen := map[intent.Server]bool{}
	var out []intent.Server
	add := func(s intent.Server) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, ci := range snap.ClientIntents() {
		for _, s := range intent.Servers(&ci) {
			add(s)
		}
	}
	for _, ps := range snap.ProtectedServices() {
		add(intent.Protected(&ps))
	}
	slices.SortFunc(out, func(a, b intent.Server) int {
		if intent.Less(a, b) {
			return -1
		}
		if intent.Less(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// policyTuples returns the accesses a server's policy grants: each declaring client on
// each port of the rule that admits clients, and everyone on the DNS ports.
func policyTuples(plan compile.Plan) []Tuple {
	object := plan.Policy.Namespace + "/" + plan.Policy.Name
	to := ServerEndpoint(plan.Server)
	var out []Tuple
	for _, rule := range plan.Policy.Spec.Ingress {
		ports := portNames(rule.Ports)
		if len(rule.From) == 0 {
			for _, p := range ports {
				out = append(out, Tuple{Point: NetworkPolicy, From: Anyone, To: to, Port: p, Object: object})
			}
			continue
		}
		byClient := map[Endpoint][]string{}
		for i := range plan.Intents {
			ci := &plan.Intents[i]
			from := endpointOf(intent.Client(ci))
			byClient[from] = append(byClient[from], ci.Namespace+"/"+ci.Name)
		}
		for _, from := range slices.SortedFunc(maps.Keys(byClient), func(a, b Endpoint) int { return cmp.Compare(a.String(), b.String()) }) {
			for _, p := range ports {
				out = append(out, Tuple{Point: NetworkPolicy, From: from, To: to, Port: p, Object: object, Intents: byClient[from]})
			}
		}
	}
	return out
}

// withContainerPorts resolves the named ports of tuples on the pods of their
// destination, as the cluster does.
func (r *Result) withContainerPorts(tuples []Tuple) []Tuple {
	for i := range tuples {
		t := &tuples[i]
		port := parsePort(t.Port)
		if port.Name == "" || strings.IndexFunc(port.Name, unicode.IsLetter) < 0 || port.Name == "any" {
			continue // a number, a range, or every port
		}
		pods, err := r.podsOf(t.To)
		if err != nil {
			continue
		}
		number := 0
		for _, p := range pods {
			n := port.ResolveOn(r.EndpointPod(p)).Number
			if n == 0 || number != 0 && n != number {
				number = 0
				break
			}
			number = n
		}
		if number != 0 {
			t.ContainerPort = fmt.Sprintf("%s/%d", port.Protocol, number)
		}
	}
	return tuples
}

// portNames renders policy ports; no port is "any".
func portNames(ports []networkingv1.NetworkPolicyPort) []string {
	if len(ports) == 0 {
		return []string{"any"}
	}
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, PortName(p))
	}
	return out
}

// PortName renders one policy port as protocol/port[-end].
func PortName(p networkingv1.NetworkPolicyPort) string {
	proto := "TCP"
	if p.Protocol != nil {
		proto = string(*p.Protocol)
	}
	port := "any"
	if p.Port != nil {
		port = p.Port.String()
	}
	if p.EndPort != nil {
		port += fmt.Sprintf("-%d", *p.EndPort)
	}
	return proto + "/" + port
}

// brokers compiles every KafkaServerConfig as the Kafka point does: a config describing
// a workload an older config already describes is ignored; in shadow mode a broker no
// ProtectedService names gets no ACL.
func brokers(snap *snapshot.Snapshot, opts enforcement.Options) []Broker {
	configs := snap.KafkaServerConfigs()
	var out []Broker
	for i := range configs {
		ksc := &configs[i]
		b := Broker{Config: ksc.Namespace + "/" + ksc.Name, compiler: acl.ServerOf(ksc)}
		b.Server = endpointOf(b.compiler.Ref)
		if twin := olderTwin(configs, ksc); twin != "" {
			b.Err = fmt.Errorf("KafkaServerConfig %s already describes workload %s; this one is ignored", twin, ksc.Spec.Workload.Name)
			out = append(out, b)
			continue
		}
		res, err := acl.Compile(b.compiler, snap.ClientIntents())
		if err != nil {
			b.Err = fmt.Errorf("compiling the ACLs: %w", err)
			out = append(out, b)
			continue
		}
		b.Result = res
		b.Enforced = opts.Enforces(ksc.Namespace, brokerProtected(snap, b.compiler.Ref))
		if b.Enforced {
			b.ACLs = res.ACLs.Sorted()
		}
		out = append(out, b)
	}
	return out
}

// olderTwin returns the name of a config of the same namespace describing the same
// workload that was created first (by name when created together).
func olderTwin(configs []v2beta1.KafkaServerConfig, ksc *v2beta1.KafkaServerConfig) string {
	for _, o := range configs {
		if o.Namespace != ksc.Namespace || o.Name == ksc.Name || o.Spec.Workload.Name != ksc.Spec.Workload.Name {
			continue
		}
		if o.CreationTimestamp.Before(&ksc.CreationTimestamp) || o.CreationTimestamp.Equal(&ksc.CreationTimestamp) && o.Name < ksc.Name {
			return o.Name
		}
	}
	return ""
}

func brokerProtected(snap *snapshot.Snapshot, ref intent.Ref) bool {
	for _, ps := range snap.ProtectedServices() {
		if intent.Covers(&ps, intent.Server{Ref: ref}) {
			return true
		}
	}
	return false
}

// tuples returns the accesses the broker's ACLs grant: each allowed topic operation of a
// principal, attributed to the clients whose ClientIntents render that principal.
func (b Broker) tuples(snap *snapshot.Snapshot) []Tuple {
	clients := map[string][]Endpoint{}
	declared := map[string][]string{}
	for _, ci := range snap.ClientIntents() {
		res, ok := b.Result.Intents[types.NamespacedName{Namespace: ci.Namespace, Name: ci.Name}]
		if !ok || res.Principal == "" {
			continue
		}
		from := endpointOf(intent.Client(&ci))
		if !slices.Contains(clients[res.Principal], from) {
			clients[res.Principal] = append(clients[res.Principal], from)
		}
		declared[res.Principal] = append(declared[res.Principal], ci.Namespace+"/"+ci.Name)
	}
	var out []Tuple
	for _, a := range b.ACLs {
		if a.Permission != acl.Allow || a.Resource != acl.Topic {
			continue
		}
		topic := a.Name
		if a.Pattern == acl.Prefixed {
			topic += "*"
		}
		from := clients[a.Principal]
		if a.Principal == acl.Everyone {
			from = []Endpoint{Anyone}
		}
		for _, f := range from {
			out = append(out, Tuple{Point: Kafka, From: f, To: b.Server, Topic: topic, Operation: string(a.Operation), Object: b.Config, Intents: declared[a.Principal]})
		}
	}
	return out
}

// podLabels returns the operator labels each pod would carry, by the rule the operator's
// labeller follows.
func podLabels(ctx context.Context, snap *snapshot.Snapshot, planner compile.Planner) (map[string]map[string]string, error) {
	refs := compile.LabelRefs(snap.ClientIntents(), snap.ProtectedServices())
	out := map[string]map[string]string{}
	for _, pod := range snap.AllPods() {
		labels, err := planner.LabelsWanted(ctx, pod.Identity, refs)
		if err != nil {
			return nil, err
		}
		if labels != nil {
			out[pod.Meta.Namespace+"/"+pod.Meta.Name] = labels
		}
	}
	return out, nil
}
