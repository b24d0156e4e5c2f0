// Package kafkaacl is the pure part of the Kafka enforcement point: it compiles intents and
// a broker's KafkaServerConfig into the exact set of ACLs the broker must hold, and diffs
// that set against what the broker holds and what this project owns there.
package acl

import (
	"fmt"
	"slices"
	"strings"
)

// ResourceType is the kind of Kafka resource an ACL applies to.
type ResourceType string

// The resource types the compiler emits.
const (
	Topic   ResourceType = "Topic"
	Group   ResourceType = "Group"
	Cluster ResourceType = "Cluster"
)

// Pattern is how an ACL's resource name is matched.
type Pattern string

// The pattern types the compiler emits.
const (
	Literal  Pattern = "Literal"
	Prefixed Pattern = "Prefixed"
)

// Operation is a Kafka ACL operation.
type Operation string

// The operations the compiler emits.
const (
	All             Operation = "All"
	Read            Operation = "Read"
	Write           Operation = "Write"
	Create          Operation = "Create"
	Delete          Operation = "Delete"
	Alter           Operation = "Alter"
	Describe        Operation = "Describe"
	ClusterAction   Operation = "ClusterAction"
	DescribeConfigs Operation = "DescribeConfigs"
	AlterConfigs    Operation = "AlterConfigs"
	IdempotentWrite Operation = "IdempotentWrite"
)

// Permission is allow or deny.
type Permission string

// The two permissions.
const (
	Allow Permission = "Allow"
	Deny  Permission = "Deny"
)

const (
	// ClusterName is the name of the one Cluster resource of a Kafka cluster.
	ClusterName = "kafka-cluster"
	// AnyHost is the host of every ACL the compiler emits: intents name workloads, not hosts.
	AnyHost = "*"
	// Anonymous is the principal of clients that did not authenticate.
	Anonymous = "User:ANONYMOUS"
	// Everyone is the wildcard principal.
	Everyone = "User:*"
)

// ACL is one Kafka access control entry together with the resource pattern it binds to.
type ACL struct {
	// Principal is "User:<name>", or "User:*" for everyone.
	Principal string
	// Host is the client host the entry applies to; "*" for any.
	Host string
	// Resource is the type of the resource pattern.
	Resource ResourceType
	// Pattern says how Name matches resource names.
	Pattern Pattern
	// Name is the resource name, prefix, or "*" (literal) for every resource.
	Name string
	// Operation is what the entry allows or denies.
	Operation Operation
	// Permission is Allow or Deny.
	Permission Permission
}

// String renders the ACL on one line, as logs and errors show it.
func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s on %s %s %q from %s", a.Permission, a.Principal, a.Operation, a.Pattern, a.Resource, a.Name, a.Host)
}

// Compare orders ACLs by principal, resource, name, pattern, operation, permission, host.
func Compare(a, b ACL) int {
	for _, c := range [][2]string{
		{a.Principal, b.Principal}, {string(a.Resource), string(b.Resource)}, {a.Name, b.Name},
		{string(a.Pattern), string(b.Pattern)}, {string(a.Operation), string(b.Operation)},
		{string(a.Permission), string(b.Permission)}, {a.Host, b.Host},
	} {
		if n := strings.Compare(c[0], c[1]); n != 0 {
			return n
		}
	}
	return 0
}

// Set is a set of ACLs.
type Set map[ACL]struct{}

// NewSet returns a set holding the ACLs.
func NewSet(acls ...ACL) Set {
	s := make(Set, len(acls))
	for _, a := range acls {
		s[a] = struct{}{}
	}
	return s
}

// Add adds an ACL.
func (s Set) Add(a ACL) { s[a] = struct{}{} }

// Has reports whether the ACL is in the set.
func (s Set) Has(a ACL) bool { _, ok := s[a]; return ok }

// Sorted returns the ACLs in Compare order, so requests and stored sets are reproducible.
func (s Set) Sorted() []ACL {
	out := make([]ACL, 0, len(s))
	for a := range s {
		out = append(out, a)
	}
	slices.SortFunc(out, Compare)
	return out
}

// Equal reports whether two sets hold the same ACLs.
func (s Set) Equal(o Set) bool {
	if len(s) != len(o) {
		return false
	}
	for a := range s {
		if !o.Has(a) {
			return false
		}
	}
	return true
}
