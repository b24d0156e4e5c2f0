package authztest

import (
	"regexp"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// This file is an evaluator of AuthorizationPolicies written from Istio's documented
// semantics (istio.io reference "Authorization Policy", the ambient "ztunnel" and
// "waypoint" pages), independent of the compiler: the tests judge what the compiler
// writes by what Istio would do with it.

// Request is one call as a proxy sees it.
type Request struct {
	// Principal is the caller's mesh identity; empty when it has none (plaintext).
	Principal string
	// Namespace is the caller's namespace, from its identity.
	Namespace string
	// Path, Method and Port are what it asks for.
	Path   string
	Method string
	Port   int32
}

// Checkpoint is where a Request is checked.
type Checkpoint struct {
	// Kind is sidecar, ztunnel or waypoint.
	Kind string
	// Namespace is the workload's (sidecar, ztunnel) or the Service's (waypoint).
	Namespace string
	// Labels are the workload's labels (sidecar, ztunnel).
	Labels map[string]string
	// Service is the Service the Request is addressed to (waypoint).
	Service string
}

// applies reports whether a policy applies at the Checkpoint: selector policies (or
// namespace-wide ones) on sidecars and ztunnel, targetRefs policies on the waypoint of
// the Services they name. A selector never reaches a waypoint of another workload, and
// targetRefs never reach sidecars or ztunnel.
func applies(p *securityv1.AuthorizationPolicy, at Checkpoint) bool {
	if p.Namespace != at.Namespace {
		return false
	}
	refs := p.Spec.GetTargetRefs()
	if ref := p.Spec.GetTargetRef(); ref != nil {
		refs = append(refs, ref)
	}
	if at.Kind == "waypoint" {
		for _, r := range refs {
			if r.GetKind() == "Service" && r.GetGroup() == "" && r.GetName() == at.Service {
				return true
			}
		}
		return false
	}
	if len(refs) > 0 {
		return false
	}
	for k, v := range p.Spec.GetSelector().GetMatchLabels() {
		if at.Labels[k] != v {
			return false
		}
	}
	return true
}

// AllowedAt applies Istio's order: a matching DENY denies; with no ALLOW policy the
// Request passes; else a matching ALLOW policy is needed. An ALLOW policy without rules
// matches nothing.
func AllowedAt(policies []*securityv1.AuthorizationPolicy, at Checkpoint, r Request) bool {
	haveAllow := false
	allowed := false
	for _, p := range policies {
		if !applies(p, at) {
			continue
		}
		switch p.Spec.GetAction() {
		case securityv1beta1.AuthorizationPolicy_DENY:
			for _, rule := range p.Spec.GetRules() {
				if ruleMatches(rule, at, r, true) {
					return false
				}
			}
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			haveAllow = true
			for _, rule := range p.Spec.GetRules() {
				if ruleMatches(rule, at, r, false) {
					allowed = true
				}
			}
		}
	}
	return !haveAllow || allowed
}

// ruleMatches: every set part of the rule must match; from and to match when any of
// their entries does. ztunnel sees no HTTP: an ALLOW rule with an L7 field never matches
// there (fail closed), and a DENY rule's L7 fields are ignored (it matches more).
func ruleMatches(rule *securityv1beta1.Rule, at Checkpoint, r Request, deny bool) bool {
	if at.Kind == "ztunnel" && HasL7(rule) && !deny {
		return false
	}
	if len(rule.GetFrom()) > 0 {
		any := false
		for _, f := range rule.GetFrom() {
			if sourceMatches(f.GetSource(), r) {
				any = true
			}
		}
		if !any {
			return false
		}
	}
	if len(rule.GetTo()) > 0 {
		any := false
		for _, t := range rule.GetTo() {
			if operationMatches(t.GetOperation(), r, at.Kind == "ztunnel") {
				any = true
			}
		}
		if !any {
			return false
		}
	}
	return len(rule.GetWhen()) == 0
}

// HasL7 reports whether a rule holds a field only an L7 proxy can check, which ztunnel
// turns into a rule that never matches.
func HasL7(rule *securityv1beta1.Rule) bool {
	for _, t := range rule.GetTo() {
		op := t.GetOperation()
		if len(op.GetPaths())+len(op.GetNotPaths())+len(op.GetMethods())+len(op.GetNotMethods())+len(op.GetHosts())+len(op.GetNotHosts()) > 0 {
			return true
		}
	}
	for _, f := range rule.GetFrom() {
		if len(f.GetSource().GetRequestPrincipals())+len(f.GetSource().GetNotRequestPrincipals()) > 0 {
			return true
		}
	}
	return len(rule.GetWhen()) > 0
}

// sourceMatches: each set field must match; principals and namespaces need an mTLS
// identity, so a plaintext caller never matches them.
func sourceMatches(s *securityv1beta1.Source, r Request) bool {
	if len(s.GetPrincipals()) > 0 && (r.Principal == "" || !matchAny(s.GetPrincipals(), r.Principal)) {
		return false
	}
	if len(s.GetNotPrincipals()) > 0 && r.Principal != "" && matchAny(s.GetNotPrincipals(), r.Principal) {
		return false
	}
	if len(s.GetNamespaces()) > 0 && (r.Principal == "" || !matchAny(s.GetNamespaces(), r.Namespace)) {
		return false
	}
	if len(s.GetNotNamespaces()) > 0 && r.Principal != "" && matchAny(s.GetNotNamespaces(), r.Namespace) {
		return false
	}
	return true
}

func operationMatches(op *securityv1beta1.Operation, r Request, l4Only bool) bool {
	port := strconv.Itoa(int(r.Port))
	if len(op.GetPorts()) > 0 && !matchAny(op.GetPorts(), port) {
		return false
	}
	if len(op.GetNotPorts()) > 0 && matchAny(op.GetNotPorts(), port) {
		return false
	}
	if l4Only {
		return true
	}
	if len(op.GetMethods()) > 0 && !matchAny(op.GetMethods(), r.Method) {
		return false
	}
	if len(op.GetNotMethods()) > 0 && matchAny(op.GetNotMethods(), r.Method) {
		return false
	}
	if len(op.GetPaths()) > 0 && !matchAnyPath(op.GetPaths(), r.Path) {
		return false
	}
	if len(op.GetNotPaths()) > 0 && matchAnyPath(op.GetNotPaths(), r.Path) {
		return false
	}
	return true
}

// match is Istio's string match: "*" any non-empty value, "abc*" a prefix, "*abc" a
// suffix, anything else exactly.
func match(pattern, v string) bool {
	switch {
	case pattern == "*":
		return v != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(v, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(v, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == v
}

func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if match(p, v) {
			return true
		}
	}
	return false
}

// matchPath: a path holding {*} or {**} is an Envoy URI template, where {*} is exactly
// one segment and {**} one or more; other paths use the string match.
func matchPath(pattern, path string) bool {
	if !strings.Contains(pattern, "{*}") && !strings.Contains(pattern, "{**}") {
		return match(pattern, path)
	}
	var re strings.Builder
	re.WriteString("^")
	for i, seg := range strings.Split(pattern, "/") {
		if i > 0 {
			re.WriteString("/")
		}
		switch seg {
		case "{*}":
			re.WriteString(`[^/]+`)
		case "{**}":
			re.WriteString(`[^/]+(?:/[^/]+)*`)
		default:
			re.WriteString(regexp.QuoteMeta(seg))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(path)
}

func matchAnyPath(patterns []string, path string) bool {
	for _, p := range patterns {
		if matchPath(p, path) {
			return true
		}
	}
	return false
}
