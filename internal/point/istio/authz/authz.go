// Package authz compiles intents into Istio AuthorizationPolicies: per server, one ALLOW
// policy on its pods (enforced by their sidecars, or by ztunnel in ambient mode) and, when
// the server's L7 rules live on an ambient waypoint, one on the waypoint. It does no I/O:
// it is given what it needs to know of the cluster, so it plans offline what the operator
// does.
package authz

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

const (
	// ServerLabel holds a digest of the server a policy protects, to find it again; the
	// same label as on the server's NetworkPolicy.
	ServerLabel = compile.ServerLabel
	// ServerAnnotation holds the server key in readable form; a policy is the server's
	// own only when it equals the server's key.
	ServerAnnotation = compile.ServerAnnotation

	// waypointPrefix names the policy on a server's waypoint; it shares no prefix with
	// compile.PolicyName's "access-to.", so the two names of a server never meet.
	waypointPrefix = "waypoint-access-to."
)

// Server is what the compiler knows of one server.
type Server struct {
	// Ref is the server as the intents name it.
	Ref intent.Server
	// Selector selects the server's pods; Istio's workload selectors match labels only.
	// Nil when the server's pods cannot be selected (no policy on them).
	Selector map[string]string
	// Pods are the server's pods, whose mesh membership decides how calls are checked.
	Pods []corev1.Pod
	// Services are the Services in the server's namespace that front its pods (for a
	// Service target, that Service): the waypoint sees calls addressed to them.
	Services []corev1.Service
	// Ports limits the allowed calls to these pod ports; empty allows every port.
	Ports []int32
}

// Client is one workload that declared calls to the server.
type Client struct {
	// Ref is the client as its ClientIntents names it.
	Ref intent.Ref
	// Pods are the client's pods: their ServiceAccounts are its identities in the mesh.
	Pods []corev1.Pod
	// HTTP are the paths and methods declared on the server, over all the client's
	// targets naming it; ignored when AnyRequest.
	HTTP []v2beta1.HTTPTarget
	// AnyRequest is true when a target naming the server declares no http resources.
	AnyRequest bool
	// SharedWith are, by ServiceAccount name, the other identities of the client's
	// namespace whose pods run under it: Istio cannot tell them from the client.
	SharedWith map[string][]identity.Identity
}

// Input is everything the policies of one server depend on.
type Input struct {
	// TrustDomain is the mesh's trust domain, as the mesh configuration (or the
	// operator's configuration) states it: principals are "<trust domain>/ns/<ns>/sa/<sa>".
	TrustDomain string
	// Server is the server whose policies are compiled.
	Server Server
	// Clients are the workloads whose live intents call it.
	Clients []Client
	// NamespaceLabels are the labels of the server's and the clients' namespaces, by name.
	NamespaceLabels map[string]map[string]string
}

// Outcome is what the policies do for one client's calls to the server.
type Outcome struct {
	// State is Enforced, Waiting or NotEnforced; shadow mode is the caller's to apply.
	State enforcement.State
	// Message says what is missing and how to fix it, or what the policy over-permits.
	Message string
}

// Result is the desired state of one server.
type Result struct {
	// Policies are the desired AuthorizationPolicies (none, the one on the server's pods,
	// or that and the one on its waypoint), sorted by name.
	Policies []*securityv1.AuthorizationPolicy
	// Outcomes are, per client, what the policies enforce of its calls.
	Outcomes map[intent.Ref]Outcome
}

// Compile returns the policies that admit to in.Server exactly the calls its clients
// declared, as far as the mesh can tell them, and what that enforces for each client.
func Compile(in Input) (Result, error) {
	if in.TrustDomain == "" {
		return Result{}, errors.New("no trust domain: the mesh configuration states none and none is configured")
	}
	if strings.ContainsAny(in.TrustDomain, "/*") {
		return Result{}, fmt.Errorf("trust domain %q holds / or *", in.TrustDomain)
	}
	res := Result{Outcomes: map[intent.Ref]Outcome{}}
	srv := in.Server
	mode, serverNote, serverState := serverMode(srv, in.NamespaceLabels[srv.Ref.Namespace])
	if mode == Outside || len(srv.Selector) == 0 {
		msg := serverNote
		if len(srv.Selector) == 0 {
			msg = fmt.Sprintf("the pods of %s cannot be selected by labels, so no AuthorizationPolicy can apply to them", srv.Ref)
		}
		for _, c := range in.Clients {
			res.Outcomes[c.Ref] = Outcome{State: enforcement.NotEnforced, Message: msg}
		}
		return res, nil
	}
	waypoints, unrouted := waypointsOf(srv, in.NamespaceLabels[srv.Ref.Namespace])
	ports := portStrings(srv.Ports)

	var podRules, waypointRules []*securityv1beta1.Rule
	for _, c := range sortedClients(in.Clients) {
		principals, note, state := clientPrincipals(in.TrustDomain, c, in.NamespaceLabels[c.Ref.Namespace])
		out := Outcome{State: state, Message: note}
		if len(principals) > 0 {
			// Ports are pod ports: the waypoint sees Service ports, and guards only the
			// Services anyway, so its rules name none.
			to, toWaypoint := operations(c, ports), operations(c, nil)
			switch {
			case mode == Sidecar || c.AnyRequest:
				// A sidecar checks L7 fields itself, and ztunnel checks a rule without them.
				podRules = append(podRules, rule(principals, to))
				if mode == Ambient && len(waypoints) > 0 {
					waypointRules = append(waypointRules, rule(principals, toWaypoint))
				}
			case len(waypoints) > 0:
				waypointRules = append(waypointRules, rule(principals, toWaypoint))
				if len(unrouted) > 0 {
					out = worse(out, Outcome{State: enforcement.Waiting, Message: fmt.Sprintf(
						"calls through Service %s are refused: it uses no waypoint, and ztunnel cannot check paths and methods (label it %s=<waypoint>)",
						strings.Join(unrouted, ", "), UseWaypointLabel)})
				}
			default:
				// Admitting the client at L4 would allow every path: refuse until a waypoint can check them.
				out = worse(out, Outcome{State: enforcement.Waiting, Message: fmt.Sprintf(
					"%s runs in ambient mode without a waypoint, and ztunnel cannot check paths and methods, so these calls are refused: deploy a waypoint and label the server's Service (or namespace) %s=<waypoint>",
					srv.Ref, UseWaypointLabel)})
			}
			out = worse(out, sharedNote(c))
		}
		out = worse(out, Outcome{State: serverState, Message: serverNote})
		res.Outcomes[c.Ref] = out
	}
	if len(waypointRules) > 0 {
		// Only the waypoint may reach a server whose L7 rules live on it: a direct call
		// would skip them.
		var wps []string
		for _, w := range waypoints {
			wps = append(wps, Principal(in.TrustDomain, w.Namespace, w.Name))
		}
		podRules = append(podRules, rule(uniqueSorted(wps), portsOnly(ports)))
	}
	pod := newPolicy(compile.PolicyName(srv.Ref), srv.Ref)
	pod.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: copyMap(srv.Selector)}
	pod.Spec.Rules = podRules
	res.Policies = append(res.Policies, pod)
	if len(waypointRules) > 0 {
		wp := newPolicy(compile.NameWithPrefix(waypointPrefix, srv.Ref), srv.Ref)
		for _, svc := range routedServices(srv, in.NamespaceLabels[srv.Ref.Namespace]) {
			wp.Spec.TargetRefs = append(wp.Spec.TargetRefs, &typev1beta1.PolicyTargetReference{Group: "", Kind: "Service", Name: svc})
		}
		wp.Spec.Rules = waypointRules
		res.Policies = append(res.Policies, wp)
	}
	slices.SortFunc(res.Policies, func(a, b *securityv1.AuthorizationPolicy) int { return cmp.Compare(a.Name, b.Name) })
	return res, nil
}

// Principal is the mesh identity of the pods running under a ServiceAccount.
func Principal(trustDomain, namespace, serviceAccount string) string {
	return trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// newPolicy returns an empty ALLOW policy of the server, marked as the operator's.
func newPolicy(name string, s intent.Server) *securityv1.AuthorizationPolicy {
	p := &securityv1.AuthorizationPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   s.Namespace,
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator, ServerLabel: s.Hash()},
			Annotations: map[string]string{ServerAnnotation: s.Key()},
		},
	}
	p.Spec.Action = securityv1beta1.AuthorizationPolicy_ALLOW
	return p
}

// serverMode decides how calls to the server are checked, and what to report about it
// to every client: the mode of its pods in the mesh (ambient when any pod is, since a
// rule ztunnel can check is one a sidecar checks too). A server without pods yet is
// planned by its namespace's labels.
func serverMode(s Server, nsLabels map[string]string) (Mode, string, enforcement.State) {
	if len(s.Pods) == 0 {
		mode := Sidecar
		if nsLabels[DataplaneModeLabel] == DataplaneAmbient {
			mode = Ambient
		}
		return mode, fmt.Sprintf("%s has no pods yet: the policy applies when they start in the mesh", s.Ref), enforcement.Waiting
	}
	var outside []string
	mode := Outside
	for i := range s.Pods {
		switch PodMode(&s.Pods[i], nsLabels) {
		case Outside:
			outside = append(outside, s.Pods[i].Name)
		case Ambient:
			mode = Ambient
		case Sidecar:
			if mode == Outside {
				mode = Sidecar
			}
		}
	}
	if len(outside) == 0 {
		return mode, "", enforcement.Enforced
	}
	slices.Sort(outside)
	fix := fmt.Sprintf("inject Istio's sidecar (namespace label istio-injection=enabled) or label the namespace %s=%s", DataplaneModeLabel, DataplaneAmbient)
	if mode == Outside {
		return Outside, fmt.Sprintf("no pod of %s is in the Istio mesh, so Istio checks no call to it: %s", s.Ref, fix), enforcement.NotEnforced
	}
	return mode, fmt.Sprintf("pods of %s outside the Istio mesh accept every call: %s; %s", s.Ref, strings.Join(outside, ", "), fix), enforcement.Waiting
}

// clientPrincipals returns the principals of the client's pods that are in the mesh
// (the others carry no identity Istio can check), and what to report about the others.
func clientPrincipals(trustDomain string, c Client, nsLabels map[string]string) ([]string, string, enforcement.State) {
	if len(c.Pods) == 0 {
		return nil, fmt.Sprintf("%s has no pods yet, so its ServiceAccount is unknown: it is admitted once they run", c.Ref), enforcement.Waiting
	}
	var principals, outside []string
	for i := range c.Pods {
		p := &c.Pods[i]
		if PodMode(p, nsLabels) == Outside {
			outside = append(outside, p.Name)
			continue
		}
		principals = append(principals, Principal(trustDomain, c.Ref.Namespace, serviceAccountOf(p)))
	}
	if len(outside) == 0 {
		return uniqueSorted(principals), "", enforcement.Enforced
	}
	slices.Sort(outside)
	return uniqueSorted(principals), fmt.Sprintf(
		"pods of %s outside the Istio mesh have no identity Istio can check, and their calls are refused: %s; inject Istio's sidecar or label the namespace %s=%s",
		c.Ref, strings.Join(outside, ", "), DataplaneModeLabel, DataplaneAmbient), enforcement.Waiting
}

// sharedNote reports the other workloads a client's ServiceAccounts admit too.
func sharedNote(c Client) Outcome {
	var parts []string
	for _, sa := range sortedKeys(c.SharedWith) {
		others := c.SharedWith[sa]
		if len(others) == 0 {
			continue
		}
		names := make([]string, len(others))
		for i, o := range others {
			names[i] = o.Name
			if o.Kind != "" {
				names[i] = o.Kind + ":" + o.Name
			}
		}
		slices.Sort(names)
		parts = append(parts, fmt.Sprintf("ServiceAccount %s is also used by %s", sa, strings.Join(slices.Compact(names), ", ")))
	}
	if len(parts) == 0 {
		return Outcome{State: enforcement.Enforced}
	}
	return Outcome{State: enforcement.Enforced, Message: fmt.Sprintf(
		"over-permission: %s; Istio identifies pods by ServiceAccount, so those workloads are admitted too: give %s a ServiceAccount of its own",
		strings.Join(parts, "; "), c.Ref.Name)}
}

// worse combines two outcomes: the less enforced state, and both messages.
func worse(a, b Outcome) Outcome {
	rank := map[enforcement.State]int{enforcement.Enforced: 0, enforcement.Shadow: 1, enforcement.Waiting: 2, enforcement.NotEnforced: 3, enforcement.Failed: 4}
	out := a
	if a.State == "" || rank[b.State] > rank[a.State] {
		out.State = b.State
	}
	switch {
	case a.Message == "":
		out.Message = b.Message
	case b.Message != "":
		out.Message = a.Message + "; " + b.Message
	}
	return out
}

// operations turns the client's declared calls into a rule's targets: none (any request
// on the allowed ports) or one operation per set of methods, holding its paths.
func operations(c Client, ports []string) []*securityv1beta1.Rule_To {
	if c.AnyRequest || len(c.HTTP) == 0 {
		return portsOnly(ports)
	}
	byMethods := map[string][]string{}
	for _, h := range c.HTTP {
		ms := make([]string, 0, len(h.Methods))
		for _, m := range h.Methods {
			ms = append(ms, string(m))
		}
		key := strings.Join(uniqueSorted(ms), ",")
		byMethods[key] = append(byMethods[key], h.Path)
	}
	var to []*securityv1beta1.Rule_To
	for _, key := range sortedKeys(byMethods) {
		op := &securityv1beta1.Operation{Paths: uniqueSorted(byMethods[key]), Ports: slices.Clone(ports)}
		if key != "" {
			op.Methods = strings.Split(key, ",")
		}
		to = append(to, &securityv1beta1.Rule_To{Operation: op})
	}
	return to
}

func portsOnly(ports []string) []*securityv1beta1.Rule_To {
	if len(ports) == 0 {
		return nil
	}
	return []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: slices.Clone(ports)}}}
}

func rule(principals []string, to []*securityv1beta1.Rule_To) *securityv1beta1.Rule {
	return &securityv1beta1.Rule{
		From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: principals}}},
		To:   to,
	}
}

// waypointsOf returns the waypoints of the Services fronting the server, and the names
// of those that use none.
func waypointsOf(s Server, nsLabels map[string]string) ([]Waypoint, []string) {
	var wps []Waypoint
	var none []string
	for i := range s.Services {
		if w, ok := WaypointOf(&s.Services[i], nsLabels); ok {
			if !slices.Contains(wps, w) {
				wps = append(wps, w)
			}
		} else {
			none = append(none, s.Services[i].Name)
		}
	}
	slices.SortFunc(wps, func(a, b Waypoint) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.Sort(none)
	return wps, none
}

// routedServices are the names of the Services fronting the server that use a waypoint.
func routedServices(s Server, nsLabels map[string]string) []string {
	var out []string
	for i := range s.Services {
		if _, ok := WaypointOf(&s.Services[i], nsLabels); ok {
			out = append(out, s.Services[i].Name)
		}
	}
	return uniqueSorted(out)
}

func serviceAccountOf(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName != "" {
		return p.Spec.ServiceAccountName
	}
	return "default"
}

func portStrings(ports []int32) []string {
	out := make([]string, 0, len(ports))
	for _, p := range slices.Sorted(slices.Values(ports)) {
		out = append(out, strconv.Itoa(int(p)))
	}
	return slices.Compact(out)
}

func sortedClients(cs []Client) []Client {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Client) int { return cmp.Compare(a.Ref.String(), b.Ref.String()) })
	return out
}

func uniqueSorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
