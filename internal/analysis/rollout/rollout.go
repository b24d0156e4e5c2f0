// Package rollout answers, from the network map, what protecting a server would break:
// for each server the operator enforces, or would enforce once a ProtectedService names
// it, the observed callers its NetworkPolicies would deny and those they would admit. It
// decides with the operator's compiler and the independent evaluator (cyclonus), on the
// same inputs and settings as plan, and does no I/O.
package rollout

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Verdict says what a server's policies would do to an observed call.
type Verdict string

// The verdicts on an observed call.
const (
	// Allowed: every sample pod of the client may reach every pod of the server called.
	Allowed Verdict = "allowed"
	// Blocked: no sample pod of the client may reach a pod of the server called.
	Blocked Verdict = "blocked"
	// Partly: some pairs of client and server pods may, others may not.
	Partly Verdict = "partly-blocked"
	// Undecided: a policy admits peers by address and the caller's address is unknown
	// (a node, or an external host named by DNS).
	Undecided Verdict = "undecided"
)

// Basis says how a verdict was reached.
type Basis string

// The bases of a verdict.
const (
	// Evaluated: the evaluator judged the client's pods of the inputs against the server's.
	Evaluated Basis = "evaluated"
	// Declared: the client has no pods in the inputs, so its declared calls decide: it
	// passes when, among the policies selecting the server's pod, a rule admitting
	// everyone, or the operator's rule for a server it declares, admits the port.
	Declared Basis = "declared"
	// Outside: the caller is no pod (a node's host network, an external host), evaluated
	// as traffic from outside every pod.
	Outside Basis = "outside"
)

// Caller is one observed call to a server and what its policies would do to it.
type Caller struct {
	Client edges.Peer `json:"client"`
	// Called is the server end as observed: the workload, or the Service whose address
	// the client connected to.
	Called   edges.Peer `json:"called"`
	Port     uint16     `json:"port"`
	Protocol string     `json:"protocol"`
	// Count, FirstSeen, LastSeen and ClientPods are the map's evidence.
	Count      uint64    `json:"count"`
	FirstSeen  time.Time `json:"firstSeen"`
	LastSeen   time.Time `json:"lastSeen"`
	ClientPods []string  `json:"clientPods,omitempty"`
	Verdict    Verdict   `json:"verdict"`
	Basis      Basis     `json:"basis"`
}

// Server is the report on one server.
type Server struct {
	Server analysis.Endpoint `json:"server"`
	// Enforced is true when the settings enforce the server already; otherwise the
	// report is of the state with Assumed applied.
	Enforced bool `json:"enforced"`
	// Assumed is what the ProtectedService the report assumes, for a server not
	// enforced, names: the server's name, and its kind for a workload target.
	Assumed *analysis.Endpoint `json:"assumedProtectedService,omitempty"`
	// Policy is the operator's NetworkPolicy for the server (namespace/name).
	Policy string `json:"networkPolicy"`
	// Blocked are the observed callers the policies would stop, wholly or partly, or
	// cannot judge; Allowed those they would admit. Most recently seen first.
	Blocked []Caller `json:"blocked"`
	Allowed []Caller `json:"allowed"`
}

// Report computes, for each server of r that the operator enforces or would enforce
// under a ProtectedService, what its policies do to the observed calls. r is the
// analysis of the inputs with opts; a server that is not enforced is judged on the
// analysis of the same inputs with a ProtectedService naming it (its name and, for a
// workload target, its kind), as the operator would run once that is applied.
func Report(ctx context.Context, r *analysis.Result, opts analysis.Options, observed []edges.Edge) ([]Server, error) {
	opts.Istio = nil // the report is of NetworkPolicies only
	// A call can concern only the servers of its server end's namespace.
	byNamespace := map[string][]edges.Edge{}
	for _, e := range observed {
		byNamespace[e.Server.Namespace] = append(byNamespace[e.Server.Namespace], e)
	}
	protected := map[analysis.Endpoint]*analysis.Result{}
	var out []Server
	for _, plan := range r.Plans {
		if plan.KindMeant != "" || plan.NamespaceMissing || !plan.Exists || plan.NoSelector {
			continue
		}
		calls := byNamespace[plan.Server.Namespace]
		res, report := r, Server{Server: analysis.ServerEndpoint(plan.Server), Enforced: plan.Enforced, Blocked: []Caller{}, Allowed: []Caller{}}
		if !plan.Enforced {
			p := protectionOf(plan.Server)
			report.Assumed = &p
			if len(calls) == 0 {
				// Nothing observed to judge: spare analysing the state it would bring.
				report.Policy = plan.Server.Namespace + "/" + compile.PolicyName(plan.Server)
				out = append(out, report)
				continue
			}
			if protected[p] == nil {
				ps := v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}, Spec: v2beta1.ProtectedServiceSpec{Name: p.Name, Kind: p.Kind}}
				// Ingress to the server's pods depends on its namespace's policies alone.
				in := opts
				in.Namespace = p.Namespace
				hyp, err := analysis.Analyze(ctx, r.Snapshot.WithProtected(ps), in)
				if err != nil {
					return nil, fmt.Errorf("analysing %s as protected: %w", plan.Server, err)
				}
				protected[p] = hyp
			}
			res = protected[p]
		}
		policy := policyOf(res, plan.Server)
		if policy == nil {
			continue
		}
		report.Policy = policy.Namespace + "/" + policy.Name
		inNamespace := slices.DeleteFunc(res.EnforcedPolicies(), func(np *networkingv1.NetworkPolicy) bool { return np.Namespace != policy.Namespace })
		j := judge{res: res, policy: policy, policies: inNamespace}
		for _, e := range calls {
			c, ok := j.caller(e)
			switch {
			case !ok:
			case c.Verdict == Allowed:
				report.Allowed = append(report.Allowed, c)
			default:
				report.Blocked = append(report.Blocked, c)
			}
		}
		slices.SortFunc(report.Blocked, compareCallers)
		slices.SortFunc(report.Allowed, compareCallers)
		out = append(out, report)
	}
	return out, nil
}

// ForChange keeps the servers a plan touches: those the change gives a NetworkPolicy
// or changes the policy of, and those not enforced, which the report shows as protected.
func ForChange(servers []Server, c analysis.Change) []Server {
	written := map[string]bool{}
	for _, o := range c.Policies {
		if o.Action != analysis.Delete {
			written[o.Namespace+"/"+o.Name] = true
		}
	}
	var out []Server
	for _, s := range servers {
		if !s.Enforced || written[s.Policy] {
			out = append(out, s)
		}
	}
	return out
}

// Stopped counts the callers the servers' policies would stop or cannot judge.
func Stopped(servers []Server) int {
	n := 0
	for _, s := range servers {
		n += len(s.Blocked)
	}
	return n
}

func compareCallers(a, b Caller) int {
	return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.Client.String(), b.Client.String()),
		cmp.Compare(a.Called.String(), b.Called.String()), cmp.Compare(a.Port, b.Port))
}

// protectionOf is the ProtectedService a user would apply to protect the server: its
// name, and its kind when a workload target gives one (a Service target's name covers
// the workload targets of that name too, as it would).
func protectionOf(s intent.Server) analysis.Endpoint {
	p := analysis.Endpoint{Namespace: s.Namespace, Name: s.Name}
	if !s.Service {
		p.Kind = s.Kind
	}
	return p
}

func policyOf(r *analysis.Result, s intent.Server) *networkingv1.NetworkPolicy {
	for i := range r.Plans {
		if r.Plans[i].Server == s {
			return r.Plans[i].Policy
		}
	}
	return nil
}

// judge decides observed calls against one server's policy, among the policies in force.
type judge struct {
	res      *analysis.Result
	policy   *networkingv1.NetworkPolicy
	policies []*networkingv1.NetworkPolicy
}

// caller judges an edge; ok is false when the edge does not reach the server's pods.
func (j judge) caller(e edges.Edge) (Caller, bool) {
	c := Caller{Client: e.Client, Called: e.Server, Port: e.Port, Protocol: e.Protocol, Count: e.Count,
		FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, ClientPods: e.ClientPods}
	dst := j.serverPods(e)
	if len(dst) == 0 {
		return c, false
	}
	port := j.portOf(e)
	var results []bool
	switch src := j.clientPods(e); {
	case len(src) > 0:
		c.Basis = Evaluated
		pods := make([]connectivity.Pod, 0, len(src)+len(dst))
		for _, p := range append(slices.Clone(src), dst...) {
			pods = append(pods, j.res.EndpointPod(p))
		}
		m := connectivity.New(pods, j.policies, port)
		for i := range src {
			for k := range dst {
				if src[i].Meta.Name != dst[k].Meta.Name || src[i].Meta.Namespace != dst[k].Meta.Namespace {
					results = append(results, m.Allowed(pods[i], pods[len(src)+k]))
				}
			}
		}
	case e.Client.Kind == edges.PeerWorkload:
		c.Basis = Declared
		results = []bool{j.declared(e.Client, dst[0], port)}
	default:
		c.Basis = Outside
		ip := ""
		if e.Client.Kind == edges.PeerExternal && net.ParseIP(e.Client.Name) != nil {
			ip = e.Client.Name
		}
		var pods []connectivity.Pod
		for _, p := range dst {
			pods = append(pods, j.res.EndpointPod(p))
		}
		m := connectivity.New(pods, j.policies, port)
		for _, p := range pods {
			allowed, decided := m.AllowedFromOutside(ip, p)
			if !decided {
				c.Verdict = Undecided
				return c, true
			}
			results = append(results, allowed)
		}
	}
	c.Verdict = verdictOf(results)
	return c, true
}

func verdictOf(results []bool) Verdict {
	switch n := len(slices.DeleteFunc(slices.Clone(results), func(b bool) bool { return !b })); n {
	case len(results):
		return Allowed
	case 0:
		return Blocked
	default:
		return Partly
	}
}

// serverPods returns the pods of the edge's server end that the server's policy
// selects: the sample pods the map names when the inputs hold them, else every pod
// of the workload or behind the Service.
func (j judge) serverPods(e edges.Edge) []facts.Pod {
	if e.Server.Namespace != j.policy.Namespace {
		return nil
	}
	var candidates []facts.Pod
	switch e.Server.Kind {
	case edges.PeerWorkload:
		candidates = j.peerPods(e.Server, e.ServerPods)
	case edges.PeerService:
		svc, _ := j.res.Snapshot.Service(context.Background(), e.Server.Namespace, e.Server.Name)
		if svc == nil || len(svc.Spec.Selector) == 0 {
			return nil
		}
		candidates, _ = j.res.Snapshot.PodsMatching(context.Background(), e.Server.Namespace, svc.Spec.Selector)
	}
	sel, err := metav1.LabelSelectorAsSelector(&j.policy.Spec.PodSelector)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(candidates), func(p facts.Pod) bool { return !sel.Matches(labels.Set(j.res.PodLabelsOf(p))) })
}

// clientPods returns the pods of a workload client: the map's sample pods the inputs
// hold, else the workload's pods in the inputs.
func (j judge) clientPods(e edges.Edge) []facts.Pod {
	if e.Client.Kind != edges.PeerWorkload {
		return nil
	}
	return j.peerPods(e.Client, e.ClientPods)
}

func (j judge) peerPods(peer edges.Peer, samples []string) []facts.Pod {
	var named, all []facts.Pod
	for _, p := range j.res.Snapshot.Pods(peer.Namespace) {
		if !p.Identity.Matches(peer.Namespace, peer.Name, peer.WorkloadKind) {
			continue
		}
		all = append(all, p)
		if slices.Contains(samples, p.Meta.Namespace+"/"+p.Meta.Name) {
			named = append(named, p)
		}
	}
	if len(named) > 0 {
		return named
	}
	return all
}

// portOf is the port the server's pods see: a Service's target port for a call to
// its address (the map records the port before the Service translates it).
func (j judge) portOf(e edges.Edge) connectivity.Port {
	proto := corev1.Protocol(e.Protocol)
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	port := connectivity.Port{Number: int(e.Port), Protocol: proto}
	if e.Server.Kind != edges.PeerService {
		return port
	}
	svc, _ := j.res.Snapshot.Service(context.Background(), e.Server.Namespace, e.Server.Name)
	if svc == nil {
		return port
	}
	for _, sp := range svc.Spec.Ports {
		p := sp.Protocol
		if p == "" {
			p = corev1.ProtocolTCP
		}
		if p != proto || sp.Port != int32(e.Port) {
			continue
		}
		switch {
		case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
			return connectivity.Port{Name: sp.TargetPort.StrVal, Protocol: proto}
		case sp.TargetPort.IntVal != 0:
			return connectivity.Port{Number: int(sp.TargetPort.IntVal), Protocol: proto}
		}
	}
	return port
}

// declared judges a client without pods by its declared calls: among the policies in
// force that select the server's pod, a rule admits it when the rule admits every peer,
// or is the operator's rule for the declared clients of a server the client declares a
// call to. The rule's ports are matched by the evaluator, on the rule alone opened to
// every peer. No policy selecting the pod admits it.
func (j judge) declared(client edges.Peer, dst facts.Pod, port connectivity.Port) bool {
	pod := j.res.EndpointPod(dst)
	podLabels := labels.Set(j.res.PodLabelsOf(dst))
	selected := false
	for _, np := range j.policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if np.Namespace != dst.Meta.Namespace || err != nil || !sel.Matches(podLabels) || !analysis.AppliesToIngress(np) {
			continue
		}
		selected = true
		isDeclared := declares(j.res, np, client)
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) > 0 && !isDeclared {
				continue
			}
			open := np.DeepCopy()
			open.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: rule.Ports}}
			if allowed, _ := connectivity.New([]connectivity.Pod{pod}, []*networkingv1.NetworkPolicy{open}, port).AllowedFromOutside("", pod); allowed {
				return true
			}
		}
	}
	return !selected
}

// declares reports whether np is the operator's policy of a server the client declares
// a call to.
func declares(r *analysis.Result, np *networkingv1.NetworkPolicy, client edges.Peer) bool {
	for _, plan := range r.Plans {
		if plan.Policy == nil || plan.Policy.Namespace != np.Namespace || plan.Policy.Name != np.Name {
			continue
		}
		for i := range plan.Intents {
			ref := intent.Client(&plan.Intents[i])
			if ref.Namespace == client.Namespace && ref.Name == client.Name && identity.KindsAgree(ref.Kind, client.WorkloadKind) {
				return true
			}
		}
	}
	return false
}
