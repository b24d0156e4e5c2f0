package authz

import (
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
)

// UpToDate reports whether an existing policy already is the desired one: the same spec,
// field by field, and the desired labels and annotations present. Anything else on it
// (labels added by other tools, say) is left alone, so an unchanged server costs no write.
func UpToDate(desired, existing *securityv1.AuthorizationPolicy) bool {
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	for k, v := range desired.Annotations {
		if existing.Annotations[k] != v {
			return false
		}
	}
	return proto.Equal(&desired.Spec, &existing.Spec)
}

// Owned reports whether a policy is the server's own: written by the intents operator, in
// the server's namespace, and recording exactly that server. Only such policies are ever
// updated or deleted for the server.
func Owned(p *securityv1.AuthorizationPolicy, s intent.Server) bool {
	return p.Namespace == s.Namespace &&
		p.Labels[ownership.Label] == ownership.IntentsOperator &&
		p.Annotations[ServerAnnotation] == s.Key()
}
