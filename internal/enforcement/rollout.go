// Package rollout decides which servers are enforced while enforcement is rolled out:
// everything by default; in shadow mode, only servers a ProtectedService names and
// servers in enforced namespaces. Every enforcement point asks it the same question.
package enforcement

import "slices"

// Options are the roll-out settings. They have the fields of enforcement.Options, so the
// NetworkPolicy point's settings convert to them as they are.
type Options struct {
	// Shadow turns enforcement off except for ProtectedServices and EnforcedNamespaces.
	Shadow bool
	// EnforcedNamespaces are enforced even in shadow mode.
	EnforcedNamespaces []string
}

// Enforces reports whether a server in namespace is enforced; protected is whether a
// ProtectedService names it.
func (o Options) Enforces(namespace string, protected bool) bool {
	return !o.Shadow || protected || slices.Contains(o.EnforcedNamespaces, namespace)
}
