package istiovalidation

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/security/authz/builder"
	"istio.io/istio/pilot/pkg/security/trustdomain"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/authz/authztest"
)

// call is an HTTP request as a sidecar's Envoy sees it.
type call struct {
	principal    string // SPIFFE ID; empty without mTLS
	method, path string
	port         uint32
}

// TestSidecarRBACAllowsExactlyTheDeclared cross-checks the compiler through Istio's own
// translation: the policies of random sidecar servers go through istiod's RBAC builder
// (pilot/pkg/security/authz/builder), and the Envoy RBAC filter it builds, evaluated by
// Envoy's documented matching rules, allows exactly the declared calls.
func TestSidecarRBACAllowsExactlyTheDeclared(t *testing.T) {
	const td = "corp.example"
	paths := []string{"/", "/a", "/a/b", "/ab", "/b", "/c", "/c/d", "/z"}
	checked := 0
	for seed := uint64(0); seed < 400 && checked < 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 23))
		in, scenario := authztest.RandomInput(rng, td)
		if scenario != authztest.SidecarServer {
			continue
		}
		checked++
		res, err := authz.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		var allow []model.AuthorizationPolicy
		for _, p := range res.Policies {
			allow = append(allow, model.AuthorizationPolicy{Name: p.Name, Namespace: p.Namespace, Spec: &p.Spec})
		}
		g := builder.New(trustdomain.NewBundle(td, nil), nil, model.AuthorizationPoliciesResult{Allow: allow}, builder.Option{})
		filters := g.BuildHTTP()
		if len(filters) != 1 {
			t.Fatalf("seed %d: %d HTTP filters, want one RBAC filter", seed, len(filters))
		}
		var cfg rbachttp.RBAC
		if err := filters[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.GetRules().GetAction() != rbacpb.RBAC_ALLOW {
			t.Fatalf("seed %d: action %v", seed, cfg.GetRules().GetAction())
		}
		for range 80 {
			c := call{path: paths[rng.IntN(len(paths))], method: string(authz.Methods[rng.IntN(len(authz.Methods))]), port: []uint32{80, 81}[rng.IntN(2)]}
			var client *authz.Client
			if k := rng.IntN(len(in.Clients) + 1); k < len(in.Clients) {
				client = &in.Clients[k]
				if len(client.Pods) > 0 {
					c.principal = "spiffe://" + authz.Principal(td, client.Ref.Namespace, client.Pods[0].Spec.ServiceAccountName)
				}
			} else {
				c.principal = "spiffe://" + authz.Principal(td, "shop", "stranger")
			}
			got := rbacAllows(t, cfg.GetRules(), c)
			want := client != nil && declared(in, *client, c)
			if got != want {
				t.Fatalf("seed %d: %+v: Envoy RBAC allows %v, declared %v\npolicies %v\nrbac %v", seed, c, got, want, res.Policies, cfg.GetRules())
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d sidecar servers checked", checked)
	}
}

// declared is the intents' meaning, from the API's doc: a client in the mesh, on a port
// the server serves, with a request its http resources name (any request without).
func declared(in authz.Input, c authz.Client, r call) bool {
	if len(c.Pods) == 0 || authz.PodMode(&c.Pods[0], in.NamespaceLabels[c.Ref.Namespace]) == authz.Outside {
		return false
	}
	if len(in.Server.Ports) > 0 && !containsPort(in.Server.Ports, r.port) {
		return false
	}
	if c.AnyRequest {
		return true
	}
	for _, h := range c.HTTP {
		okPath := h.Path == r.path
		if p, prefix := strings.CutSuffix(h.Path, "*"); prefix {
			okPath = strings.HasPrefix(r.path, p)
		}
		okMethod := len(h.Methods) == 0
		for _, m := range h.Methods {
			okMethod = okMethod || m == v2beta1.HTTPMethod(r.method)
		}
		if okPath && okMethod {
			return true
		}
	}
	return false
}

func containsPort(ports []int32, p uint32) bool {
	for _, q := range ports {
		if uint32(q) == p {
			return true
		}
	}
	return false
}

// rbacAllows applies Envoy's RBAC filter (ALLOW action): the request passes when some
// policy has a matching permission and a matching principal.
func rbacAllows(t *testing.T, rules *rbacpb.RBAC, c call) bool {
	for _, p := range rules.GetPolicies() {
		perm, prin := false, false
		for _, x := range p.GetPermissions() {
			perm = perm || permission(t, x, c)
		}
		for _, x := range p.GetPrincipals() {
			prin = prin || principal(t, x, c)
		}
		if perm && prin {
			return true
		}
	}
	return false
}

func permission(t *testing.T, p *rbacpb.Permission, c call) bool {
	switch r := p.GetRule().(type) {
	case *rbacpb.Permission_Any:
		return r.Any
	case *rbacpb.Permission_AndRules:
		for _, x := range r.AndRules.GetRules() {
			if !permission(t, x, c) {
				return false
			}
		}
		return true
	case *rbacpb.Permission_OrRules:
		for _, x := range r.OrRules.GetRules() {
			if permission(t, x, c) {
				return true
			}
		}
		return false
	case *rbacpb.Permission_NotRule:
		return !permission(t, r.NotRule, c)
	case *rbacpb.Permission_DestinationPort:
		return r.DestinationPort == c.port
	case *rbacpb.Permission_Header:
		return header(t, r.Header, c)
	case *rbacpb.Permission_UrlPath:
		return stringMatch(t, r.UrlPath.GetPath(), c.path)
	}
	t.Fatalf("permission %T not modelled", p.GetRule())
	return false
}

func principal(t *testing.T, p *rbacpb.Principal, c call) bool {
	switch r := p.GetIdentifier().(type) {
	case *rbacpb.Principal_Any:
		return r.Any
	case *rbacpb.Principal_AndIds:
		for _, x := range r.AndIds.GetIds() {
			if !principal(t, x, c) {
				return false
			}
		}
		return true
	case *rbacpb.Principal_OrIds:
		for _, x := range r.OrIds.GetIds() {
			if principal(t, x, c) {
				return true
			}
		}
		return false
	case *rbacpb.Principal_NotId:
		return !principal(t, r.NotId, c)
	case *rbacpb.Principal_Authenticated_:
		return c.principal != "" && stringMatch(t, r.Authenticated.GetPrincipalName(), c.principal)
	}
	t.Fatalf("principal %T not modelled", p.GetIdentifier())
	return false
}

func header(t *testing.T, h *routepb.HeaderMatcher, c call) bool {
	if h.GetName() != ":method" {
		t.Fatalf("header %q not modelled", h.GetName())
	}
	var ok bool
	switch {
	case h.GetStringMatch() != nil:
		ok = stringMatch(t, h.GetStringMatch(), c.method)
	case h.GetExactMatch() != "":
		ok = h.GetExactMatch() == c.method
	case h.GetPresentMatch():
		ok = true
	default:
		t.Fatalf("header matcher %v not modelled", h)
	}
	return ok != h.GetInvertMatch()
}

func stringMatch(t *testing.T, m *matcherpb.StringMatcher, v string) bool {
	if m.GetIgnoreCase() {
		t.Fatalf("case-insensitive matcher %v not modelled", m)
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherpb.StringMatcher_Exact:
		return v == p.Exact
	case *matcherpb.StringMatcher_Prefix:
		return strings.HasPrefix(v, p.Prefix)
	case *matcherpb.StringMatcher_Suffix:
		return strings.HasSuffix(v, p.Suffix)
	case *matcherpb.StringMatcher_Contains:
		return strings.Contains(v, p.Contains)
	case *matcherpb.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.GetRegex() + ")$").MatchString(v)
	}
	t.Fatalf("string matcher %v not modelled", m)
	return false
}
