package authz

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// MeshFacts answers what the Istio compiler asks of a cluster beyond facts.Facts: pods
// with their spec (containers, ServiceAccount), namespaces' labels, the Services in front
// of pods, and the mesh's trust domain. The operator answers from its caches, the CLI
// from a snapshot; implementations return what they hold, never an error for something
// absent.
type MeshFacts interface {
	// PodSpecs returns the pods of namespace with these names, with their spec; pods it
	// does not hold are left out.
	PodSpecs(ctx context.Context, namespace string, names []string) ([]corev1.Pod, error)
	// NamespaceLabels returns the labels of namespace (nil when it does not exist).
	NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error)
	// ServicesSelecting returns the Services of namespace whose selector matches podLabels.
	ServicesSelecting(ctx context.Context, namespace string, podLabels map[string]string) ([]corev1.Service, error)
	// PodsWithServiceAccount returns the pods of namespace running under serviceAccount,
	// with their identities.
	PodsWithServiceAccount(ctx context.Context, namespace, serviceAccount string) ([]facts.Pod, error)
	// MeshConfig returns the "mesh" entry of the mesh's configuration (istiod's ConfigMap),
	// and whether there is one.
	MeshConfig(ctx context.Context) (string, bool, error)
}

// IstioDefaultTrustDomain is the trust domain istiod uses when its mesh configuration
// names none; it is used only then, never in place of a configured one.
const IstioDefaultTrustDomain = "cluster.local"

// TrustDomainOf reads the trust domain from the mesh configuration, with istiod's rule:
// meshConfig.trustDomain, else IstioDefaultTrustDomain.
func TrustDomainOf(meshConfig string) (string, error) {
	var mc struct {
		TrustDomain string `json:"trustDomain"`
	}
	if err := yaml.Unmarshal([]byte(meshConfig), &mc); err != nil {
		return "", fmt.Errorf("reading the mesh configuration: %w", err)
	}
	if mc.TrustDomain == "" {
		return IstioDefaultTrustDomain, nil
	}
	return mc.TrustDomain, nil
}

// Planner gathers, from the facts, what one server's policies depend on.
type Planner struct {
	Facts facts.Facts
	Mesh  MeshFacts
	// TrustDomain, when set (operator configuration), is used instead of the mesh's.
	TrustDomain string
}

// Gather returns the compiler's input for server: its pods and Services, and every
// client whose live intents call it, with the http resources declared on it. A server
// that does not exist has no selector; Compile then reports it.
func (p Planner) Gather(ctx context.Context, server intent.Server) (Input, error) {
	in := Input{Server: Server{Ref: server}, NamespaceLabels: map[string]map[string]string{}}
	td, err := p.trustDomain(ctx)
	if err != nil {
		return in, err
	}
	in.TrustDomain = td
	var serverPods []facts.Pod
	if server.Service {
		svc, err := p.Facts.Service(ctx, server.Namespace, server.Name)
		if err != nil {
			return in, fmt.Errorf("reading Service %s/%s: %w", server.Namespace, server.Name, err)
		}
		if svc != nil && len(svc.Spec.Selector) > 0 {
			in.Server.Selector = copyMap(svc.Spec.Selector)
			in.Server.Services = []corev1.Service{*svc}
			in.Server.Ports = numericTargetPorts(svc)
			if serverPods, err = p.Facts.PodsMatching(ctx, server.Namespace, svc.Spec.Selector); err != nil {
				return in, fmt.Errorf("listing the pods of Service %s/%s: %w", server.Namespace, server.Name, err)
			}
		}
	} else {
		sel, pods, err := compile.Select(ctx, p.Facts, server.Ref)
		if err != nil {
			return in, fmt.Errorf("selecting the pods of %s: %w", server, err)
		}
		// Istio selects workloads by labels only; a selector with expressions is
		// replaced by the operator's pod labels, as NetworkPolicies do.
		if len(sel.Selector.MatchExpressions) > 0 {
			sel = compile.ByLabel(server.Ref)
		}
		in.Server.Selector = copyMap(sel.Selector.MatchLabels)
		for _, pod := range pods {
			if server.Matches(pod.Identity) {
				serverPods = append(serverPods, pod)
			}
		}
	}
	if in.Server.Pods, err = p.Mesh.PodSpecs(ctx, server.Namespace, names(serverPods)); err != nil {
		return in, fmt.Errorf("reading the pods of %s: %w", server, err)
	}
	if !server.Service {
		if in.Server.Services, err = p.servicesOf(ctx, server.Namespace, in.Server.Pods); err != nil {
			return in, err
		}
	}
	if err := p.addNamespace(ctx, in.NamespaceLabels, server.Namespace); err != nil {
		return in, err
	}
	intents, err := p.Facts.IntentsTargeting(ctx, server)
	if err != nil {
		return in, fmt.Errorf("listing the intents calling %s: %w", server, err)
	}
	// Every client in a namespace shares its ServiceAccounts' pods; read them once.
	users := map[string][]identity.Identity{}
	for i := range intents {
		c, err := p.client(ctx, &intents[i], server, users)
		if err != nil {
			return in, err
		}
		in.Clients = append(in.Clients, c)
		if err := p.addNamespace(ctx, in.NamespaceLabels, c.Ref.Namespace); err != nil {
			return in, err
		}
	}
	return in, nil
}

func (p Planner) trustDomain(ctx context.Context) (string, error) {
	if p.TrustDomain != "" {
		return p.TrustDomain, nil
	}
	mc, ok, err := p.Mesh.MeshConfig(ctx)
	if err != nil || !ok {
		return "", err
	}
	return TrustDomainOf(mc)
}

// client gathers one client of server: its pods with their spec, what it declared on
// server over all its targets naming it, and who else runs under its ServiceAccounts.
// users holds, by namespace/ServiceAccount, the identities already read.
func (p Planner) client(ctx context.Context, ci *v2beta1.ClientIntents, server intent.Server, users map[string][]identity.Identity) (Client, error) {
	c := Client{Ref: intent.Client(ci)}
	for _, t := range ci.Spec.Targets {
		if s, ok := intent.ServerOf(ci, t); !ok || s != server {
			continue
		}
		http := intent.HTTPOf(t)
		if len(http) == 0 {
			c.AnyRequest = true
		}
		c.HTTP = append(c.HTTP, http...)
	}
	_, pods, err := compile.Select(ctx, p.Facts, c.Ref)
	if err != nil {
		return c, fmt.Errorf("selecting the pods of %s: %w", c.Ref, err)
	}
	var own []facts.Pod
	for _, pod := range pods {
		if c.Ref.Matches(pod.Identity) {
			own = append(own, pod)
		}
	}
	if c.Pods, err = p.Mesh.PodSpecs(ctx, c.Ref.Namespace, names(own)); err != nil {
		return c, fmt.Errorf("reading the pods of %s: %w", c.Ref, err)
	}
	for i := range c.Pods {
		sa := serviceAccountOf(&c.Pods[i])
		if _, done := c.SharedWith[sa]; done {
			continue
		}
		ids, err := p.serviceAccountUsers(ctx, users, c.Ref.Namespace, sa)
		if err != nil {
			return c, err
		}
		if c.SharedWith == nil {
			c.SharedWith = map[string][]identity.Identity{}
		}
		c.SharedWith[sa] = nil
		for _, id := range ids {
			if !c.Ref.Matches(id) {
				c.SharedWith[sa] = append(c.SharedWith[sa], id)
			}
		}
	}
	return c, nil
}

// serviceAccountUsers returns the distinct identities of the pods running under
// namespace/serviceAccount, read once per memo.
func (p Planner) serviceAccountUsers(ctx context.Context, memo map[string][]identity.Identity, namespace, serviceAccount string) ([]identity.Identity, error) {
	key := namespace + "/" + serviceAccount
	if ids, ok := memo[key]; ok {
		return ids, nil
	}
	pods, err := p.Mesh.PodsWithServiceAccount(ctx, namespace, serviceAccount)
	if err != nil {
		return nil, fmt.Errorf("listing the pods of ServiceAccount %s: %w", key, err)
	}
	seen := make(map[identity.Identity]bool, len(pods))
	ids := make([]identity.Identity, 0, len(pods))
	for _, u := range pods {
		if !seen[u.Identity] {
			seen[u.Identity] = true
			ids = append(ids, u.Identity)
		}
	}
	memo[key] = ids
	return ids, nil
}

// servicesOf returns the Services in front of any of the pods, once each.
func (p Planner) servicesOf(ctx context.Context, namespace string, pods []corev1.Pod) ([]corev1.Service, error) {
	var out []corev1.Service
	seen := map[string]bool{}
	for i := range pods {
		svcs, err := p.Mesh.ServicesSelecting(ctx, namespace, pods[i].Labels)
		if err != nil {
			return nil, fmt.Errorf("listing the Services of pod %s/%s: %w", namespace, pods[i].Name, err)
		}
		for _, s := range svcs {
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b corev1.Service) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (p Planner) addNamespace(ctx context.Context, into map[string]map[string]string, namespace string) error {
	if _, done := into[namespace]; done {
		return nil
	}
	l, err := p.Mesh.NamespaceLabels(ctx, namespace)
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	into[namespace] = l
	return nil
}

// numericTargetPorts returns the pod ports a Service forwards to, when every one is a
// number; a named port may stand for different numbers on different pods, and Istio's
// rules name numbers, so then the policy names no port at all.
func numericTargetPorts(svc *corev1.Service) []int32 {
	var out []int32
	for _, sp := range svc.Spec.Ports {
		switch t := sp.TargetPort; {
		case t.Type == intstr.String:
			return nil
		case t.IntVal == 0:
			out = append(out, sp.Port)
		default:
			out = append(out, t.IntVal)
		}
	}
	return out
}

func names(pods []facts.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Meta.Name)
	}
	return out
}
