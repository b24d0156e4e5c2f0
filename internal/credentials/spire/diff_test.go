package spire

import (
	"testing"
)

func TestDiff(t *testing.T) {
	a := Entry{SPIFFEID: "spiffe://td/a", Selectors: []string{"k8s:sa:a", "k8s:ns:x"}, DNSNames: []string{"a.x"}, TTL: 60}
	b := Entry{SPIFFEID: "spiffe://td/b", Selectors: []string{"k8s:ns:x", "k8s:sa:b"}, DNSNames: []string{"b.x"}, TTL: 60}
	withID := func(e Entry, id string) Entry { e.ID = id; return e }
	cases := []struct {
		name                string
		desired, current    []Entry
		create, update, del int
	}{
		{"nothing", nil, nil, 0, 0, 0},
		{"all new", []Entry{a, b}, nil, 2, 0, 0},
		{"in step (selector order ignored)", []Entry{a, b}, []Entry{withID(b, "2"), withID(Entry{SPIFFEID: a.SPIFFEID, Selectors: []string{"k8s:ns:x", "k8s:sa:a"}, DNSNames: a.DNSNames, TTL: 60}, "1")}, 0, 0, 0},
		{"dns changed", []Entry{a}, []Entry{withID(Entry{SPIFFEID: a.SPIFFEID, Selectors: a.Selectors, DNSNames: []string{"old"}, TTL: 60}, "1")}, 0, 1, 0},
		{"ttl changed", []Entry{a}, []Entry{withID(Entry{SPIFFEID: a.SPIFFEID, Selectors: a.Selectors, DNSNames: a.DNSNames, TTL: 5}, "1")}, 0, 1, 0},
		{"service account changed: new entry, old removed", []Entry{a}, []Entry{withID(Entry{SPIFFEID: a.SPIFFEID, Selectors: []string{"k8s:ns:x", "k8s:sa:other"}, DNSNames: a.DNSNames, TTL: 60}, "1")}, 1, 0, 1},
		{"orphan removed", []Entry{a}, []Entry{withID(a, "1"), withID(b, "2")}, 0, 0, 1},
		{"duplicate removed", []Entry{a}, []Entry{withID(a, "1"), withID(a, "2")}, 0, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			create, update, del := Diff(c.desired, c.current)
			if len(create) != c.create || len(update) != c.update || len(del) != c.del {
				t.Errorf("create %d update %d delete %d, want %d %d %d", len(create), len(update), len(del), c.create, c.update, c.del)
			}
			for _, u := range update {
				if u.ID == "" {
					t.Errorf("update without the current entry's ID: %+v", u)
				}
			}
		})
	}
}
