package authz

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Istio's path templates, each a whole path segment.
const (
	// MatchOneSegment matches exactly one path segment.
	MatchOneSegment = "{*}"
	// MatchAnySegments matches one or more path segments; no template may follow it.
	MatchAnySegments = "{**}"
)

// Methods are the HTTP methods an intent may allow: those Istio's policies match and the
// intents schema accepts, HEAD included.
var Methods = []v2beta1.HTTPMethod{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT"}

// templateLiteral is what a literal segment of a templated path may hold: the characters
// Envoy's URI templates accept (RFC 3986 pchar, without "*").
var templateLiteral = regexp.MustCompile(`^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$`)

// ValidatePath checks a path of an intent against what Istio matches, so that a path
// that Istio would refuse, or read differently than its author, never reaches a policy.
// A path starts with "/" and is one of:
//   - exact: "/api/v1/users";
//   - a prefix: "/api/*", a single "*" at the end;
//   - a template: "/api/{*}/users/{**}", where {*} stands for one whole segment and {**}
//     for one or more segments (the last template of the path; literal segments may
//     follow it), with no "*" outside them.
func ValidatePath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return errors.New("must start with /")
	}
	for _, c := range path {
		if c < '!' || c > '~' {
			return fmt.Errorf("holds %q: only visible ASCII characters are allowed (percent-encode the others)", c)
		}
	}
	if !strings.ContainsAny(path, "{}") {
		if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
			return errors.New("\"*\" is allowed only as the last character (a prefix, like /api/*)")
		}
		return nil
	}
	anySeen := false
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		switch {
		case (seg == MatchOneSegment || seg == MatchAnySegments) && anySeen:
			return errors.New("{**} must be the last template of the path")
		case seg == MatchAnySegments:
			anySeen = true
		case seg == MatchOneSegment:
		case strings.ContainsAny(seg, "{}"):
			return fmt.Errorf("segment %q: { and } are allowed only in the whole-segment templates {*} and {**}", seg)
		case !templateLiteral.MatchString(seg):
			return fmt.Errorf("segment %q: beside a template, a segment holds only letters, digits and -._~%%!$&'()+,;:@= (no *)", seg)
		}
	}
	return nil
}

// ValidateMethod checks that m is a method Istio's policies can allow.
func ValidateMethod(m v2beta1.HTTPMethod) error {
	if slices.Contains(Methods, m) {
		return nil
	}
	return fmt.Errorf("not an HTTP method an intent may allow (one of %s)", joinMethods(Methods))
}

func joinMethods(ms []v2beta1.HTTPMethod) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
