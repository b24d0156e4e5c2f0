package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// IstioOptions are the Istio point's settings the analysis assumes.
type IstioOptions struct {
	// TrustDomain, when set, is used instead of the mesh configuration's.
	TrustDomain string
	// MeshConfig is istiod's ConfigMap, read when the inputs hold it.
	MeshConfig types.NamespacedName
}

// IstioServer is the Istio point's outcome for one server.
type IstioServer struct {
	Server intent.Server
	// Enforced is false when the roll-out settings leave the server alone: no policy.
	Enforced bool
	// Policies are the AuthorizationPolicies the operator would hold for the server.
	Policies []*securityv1.AuthorizationPolicy
	// Outcomes are, per client, what they enforce of its calls.
	Outcomes map[intent.Ref]authz.Outcome
	// Err is why no policy can be compiled (no trust domain, say).
	Err error
	// TrustDomain is the one the principals are written in.
	TrustDomain string
}

// snapshotMesh answers the Istio compiler's questions from a snapshot.
type snapshotMesh struct {
	snap       *snapshot.Snapshot
	meshConfig types.NamespacedName
}

var _ authz.MeshFacts = snapshotMesh{}

// PodSpecs implements authz.MeshFacts.
func (m snapshotMesh) PodSpecs(_ context.Context, namespace string, names []string) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, n := range names {
		if p, ok := m.snap.Pod(namespace, n); ok {
			out = append(out, *p)
		}
	}
	return out, nil
}

// NamespaceLabels implements authz.MeshFacts.
func (m snapshotMesh) NamespaceLabels(_ context.Context, namespace string) (map[string]string, error) {
	if ns := m.snap.Namespace(namespace); ns != nil {
		return ns.Labels, nil
	}
	return nil, nil
}

// ServicesSelecting implements authz.MeshFacts.
func (m snapshotMesh) ServicesSelecting(_ context.Context, namespace string, podLabels map[string]string) ([]corev1.Service, error) {
	var out []corev1.Service
	for _, svc := range m.snap.Services(namespace) {
		if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels)) {
			out = append(out, *svc)
		}
	}
	return out, nil
}

// PodsWithServiceAccount implements authz.MeshFacts.
func (m snapshotMesh) PodsWithServiceAccount(_ context.Context, namespace, serviceAccount string) ([]facts.Pod, error) {
	var out []facts.Pod
	for _, p := range m.snap.Pods(namespace) {
		pod, _ := m.snap.Pod(namespace, p.Meta.Name)
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		if sa == serviceAccount {
			out = append(out, p)
		}
	}
	return out, nil
}

// MeshConfig implements authz.MeshFacts.
func (m snapshotMesh) MeshConfig(context.Context) (string, bool, error) {
	cm := m.snap.ConfigMap(m.meshConfig.Namespace, m.meshConfig.Name)
	if cm == nil {
		return "", false, nil
	}
	mesh, ok := cm.Data["mesh"]
	return mesh, ok, nil
}

// analyzeIstio compiles the AuthorizationPolicies of every server the NetworkPolicy
// point planned, with the Istio point's compiler, under the same roll-out decision.
func (r *Result) analyzeIstio(ctx context.Context, opts IstioOptions) error {
	planner := authz.Planner{Facts: r.Snapshot, Mesh: snapshotMesh{snap: r.Snapshot, meshConfig: opts.MeshConfig}, TrustDomain: opts.TrustDomain}
	for _, plan := range r.Plans {
		is := IstioServer{Server: plan.Server, Enforced: plan.Enforced && plan.KindMeant == "" && !plan.NamespaceMissing}
		if is.Enforced {
			in, err := planner.Gather(ctx, plan.Server)
			if err != nil {
				return fmt.Errorf("gathering the mesh facts of %s: %w", plan.Server, err)
			}
			is.TrustDomain = in.TrustDomain
			res, err := authz.Compile(in)
			if err != nil {
				is.Err = err
			}
			is.Policies, is.Outcomes = res.Policies, res.Outcomes
		}
		r.Istio = append(r.Istio, is)
		r.Tuples = append(r.Tuples, is.tuples(plan)...)
	}
	slices.SortFunc(r.Tuples, compareTuples)
	return nil
}

// tuples are the accesses the server's policies grant: each declaring client whose
// outcome admits it, with what it may ask for.
func (is IstioServer) tuples(plan compile.Plan) []Tuple {
	if len(is.Policies) == 0 {
		return nil
	}
	object := is.Policies[0].Namespace + "/" + is.Policies[0].Name
	var out []Tuple
	seen := map[string]bool{}
	for i := range plan.Intents {
		ci := &plan.Intents[i]
		ref := intent.Client(ci)
		if o, ok := is.Outcomes[ref]; !ok || o.State != enforcement.Enforced {
			continue
		}
		for _, what := range requestsDeclared(ci, plan.Server) {
			t := Tuple{Point: Istio, From: endpointOf(ref), To: ServerEndpoint(plan.Server), Operation: what, Object: object,
				Intents: []string{ci.Namespace + "/" + ci.Name}}
			if !seen[t.Key()] {
				seen[t.Key()] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// requestsDeclared renders what a ClientIntents declares on server: "METHODS path" per
// http resource, or "any request".
func requestsDeclared(ci *v2beta1.ClientIntents, server intent.Server) []string {
	var out []string
	for _, t := range ci.Spec.Targets {
		if s, ok := intent.ServerOf(ci, t); !ok || s != server {
			continue
		}
		http := intent.HTTPOf(t)
		if len(http) == 0 {
			return []string{"any request"}
		}
		for _, h := range http {
			ms := "any method"
			if len(h.Methods) > 0 {
				var names []string
				for _, m := range h.Methods {
					names = append(names, string(m))
				}
				ms = strings.Join(names, ",")
			}
			out = append(out, ms+" "+h.Path)
		}
	}
	return out
}

// istioServer returns the Istio outcome of the server the endpoint names.
func (r *Result) istioServer(e Endpoint) *IstioServer {
	for i := range r.Istio {
		s := ServerEndpoint(r.Istio[i].Server)
		// Without a kind, the endpoint names the workload or the Service of that name.
		if s.Namespace == e.Namespace && s.Name == e.Name && (e.Kind == "" || e.Kind == s.Kind || s.Kind == "" && e.Kind != "Service") {
			return &r.Istio[i]
		}
	}
	return nil
}

// explainIstio answers whether the Istio point's policies admit calls from q.From to
// q.To, with what the client declared, and any over-permission of its ServiceAccount.
// ok is false when the Istio point was not analysed or writes nothing for q.To.
func (r *Result) explainIstio(q Query) (Explanation, bool) {
	is := r.istioServer(q.To)
	if is == nil {
		return Explanation{}, false
	}
	e := Explanation{Query: q, Point: Istio, Verdict: Unknown}
	switch {
	case is.Err != nil:
		e.Chain = []string{fmt.Sprintf("no AuthorizationPolicy: %v", is.Err)}
		return e, true
	case !is.Enforced:
		e.Default = true
		e.Chain = []string{fmt.Sprintf("shadow mode: the operator writes no AuthorizationPolicy for %s: the mesh's own policies decide", q.To.Short())}
		return e, true
	}
	var plan *compile.Plan
	for i := range r.Plans {
		if r.Plans[i].Server == is.Server {
			plan = &r.Plans[i]
		}
	}
	var declaring []intent.Ref
	if plan != nil {
		for i := range plan.Intents {
			ci := &plan.Intents[i]
			c := intent.Client(ci)
			if c.Namespace != q.From.Namespace || c.Name != q.From.Name || (q.From.Kind != "" && c.Kind != "" && c.Kind != q.From.Kind) {
				continue
			}
			declaring = append(declaring, c)
			for _, what := range requestsDeclared(ci, is.Server) {
				e.Chain = append(e.Chain, fmt.Sprintf("%s declares %s on %s", r.named(ci), what, q.To.Short()))
			}
		}
	}
	if len(is.Policies) == 0 {
		e.Default = true
		for _, o := range is.Outcomes {
			e.Chain = append(e.Chain, "no AuthorizationPolicy: "+o.Message)
			break
		}
		return e, true
	}
	var names []string
	for _, p := range is.Policies {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	if len(declaring) == 0 {
		e.Verdict = Denied
		e.Missing = []string{fmt.Sprintf("AuthorizationPolicy %s admits only declared clients; %s declares no call to %s", strings.Join(names, ", "), q.From.Short(), q.To.Short())}
		return e, true
	}
	o := is.Outcomes[declaring[0]]
	e.Chain = append(e.Chain, fmt.Sprintf("-> AuthorizationPolicy %s", strings.Join(names, ", ")))
	admitted := false
	for _, p := range r.principalsOf(q.From, is.TrustDomain) {
		if admits(is.Policies, p) {
			admitted = true
			e.Chain = append(e.Chain, "-> a rule admits principal "+p)
		}
	}
	switch {
	case o.State == enforcement.Enforced:
		e.Verdict = Allowed
		if o.Message != "" {
			e.Chain = append(e.Chain, "warning: "+o.Message)
		}
	case o.State == enforcement.Waiting && admitted:
		// Waiting with a rule admitting the client: its meshed pods get through, and
		// what waits decides the rest.
		e.Verdict = Mixed
		if r.inMesh(q.From) && !r.inMesh(q.To) {
			// Only the server's pods outside the mesh wait, and they accept every call.
			e.Verdict = Allowed
		}
		e.Chain = append(e.Chain, "warning: "+o.Message)
	default:
		e.Verdict = Denied
		e.Missing = []string{o.Message}
	}
	return e, true
}

// inMesh reports whether every pod of the endpoint runs in the Istio mesh (a sidecar or
// ambient mode), so that its calls carry an identity and calls to it are checked.
func (r *Result) inMesh(e Endpoint) bool {
	labels := map[string]string{}
	if ns := r.Snapshot.Namespace(e.Namespace); ns != nil {
		labels = ns.Labels
	}
	for _, p := range r.Snapshot.Pods(e.Namespace) {
		if !e.matches(p) {
			continue
		}
		pod, ok := r.Snapshot.Pod(p.Meta.Namespace, p.Meta.Name)
		if ok && authz.PodMode(pod, labels) == authz.Outside {
			return false
		}
	}
	return true
}

// authorizationPolicies are every AuthorizationPolicy the operator would hold.
func (r *Result) authorizationPolicies() []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, is := range r.Istio {
		out = append(out, is.Policies...)
	}
	return out
}

// principalsOf returns the mesh identities of the endpoint's pods: the principals of
// their ServiceAccounts.
func (r *Result) principalsOf(e Endpoint, trustDomain string) []string {
	var out []string
	for _, p := range r.Snapshot.Pods(e.Namespace) {
		if !e.matches(p) {
			continue
		}
		pod, _ := r.Snapshot.Pod(p.Meta.Namespace, p.Meta.Name)
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		if pr := authz.Principal(trustDomain, e.Namespace, sa); !slices.Contains(out, pr) {
			out = append(out, pr)
		}
	}
	slices.Sort(out)
	return out
}

// admits reports whether a rule of the policies names the principal.
func admits(policies []*securityv1.AuthorizationPolicy, principal string) bool {
	for _, p := range policies {
		for _, rule := range p.Spec.GetRules() {
			for _, f := range rule.GetFrom() {
				if slices.Contains(f.GetSource().GetPrincipals(), principal) {
					return true
				}
			}
		}
	}
	return false
}
