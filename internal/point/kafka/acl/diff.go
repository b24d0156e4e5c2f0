package acl

import "slices"

// Plan is what to change on a broker so that it holds the desired ACLs.
type Plan struct {
	// Create are the desired ACLs the broker lacks.
	Create []ACL
	// Delete are owned ACLs that are no longer desired and are on the broker.
	Delete []ACL
	// Keep are owned ACLs that are desired and on the broker: still owned afterwards.
	Keep Set
	// Foreign counts the broker's ACLs this project does not own; they are never touched,
	// even when they are also desired.
	Foreign int
}

// Diff plans the changes that make the broker hold desired. Only owned ACLs are ever
// deleted: an ACL that was on the broker before this project wanted it (created by hand,
// by another tool, or identical to one the intents call for) stays foreign and stays put.
func Diff(desired, owned, onBroker Set) Plan {
	p := Plan{Keep: Set{}}
	for a := range desired {
		if !onBroker.Has(a) {
			p.Create = append(p.Create, a)
		}
	}
	for a := range onBroker {
		switch {
		case !owned.Has(a):
			p.Foreign++
		case desired.Has(a):
			p.Keep.Add(a)
		default:
			p.Delete = append(p.Delete, a)
		}
	}
	sortACLs(p.Create)
	sortACLs(p.Delete)
	return p
}

// Empty reports whether the plan changes nothing on the broker.
func (p Plan) Empty() bool { return len(p.Create) == 0 && len(p.Delete) == 0 }

// Owned returns the owned set after the plan ran: kept ACLs, the ones created, and the
// deletions that failed (still on the broker, still ours to remove later).
func (p Plan) Owned(created, failedDeletes []ACL) Set {
	out := make(Set, len(p.Keep)+len(created)+len(failedDeletes))
	for a := range p.Keep {
		out.Add(a)
	}
	for _, a := range created {
		out.Add(a)
	}
	for _, a := range failedDeletes {
		out.Add(a)
	}
	return out
}

func sortACLs(s []ACL) { slices.SortFunc(s, Compare) }
