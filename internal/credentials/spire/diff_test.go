package spire

import (
	"fmt"
	"math/rand/v2"
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

// Applying Diff's result to any current set yields exactly the desired set, and a second
// Diff against the result has nothing to do.
func TestDiffPropertyConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, withIDs bool) []Entry {
		var out []Entry
		for i := 0; i < n; i++ {
			e := Entry{
				SPIFFEID:  fmt.Sprintf("spiffe://td/w%d", rng.IntN(6)),
				Selectors: []string{"k8s:ns:x", fmt.Sprintf("k8s:sa:s%d", rng.IntN(3))},
				DNSNames:  []string{fmt.Sprintf("d%d", rng.IntN(2))},
				TTL:       int32(60 * (1 + rng.IntN(2))),
			}
			if withIDs {
				e.ID = fmt.Sprintf("id%d", i)
			}
			out = append(out, e)
		}
		return out
	}
	for round := 0; round < 500; round++ {
		desired, current := gen(rng.IntN(8), false), gen(rng.IntN(8), true)
		create, update, del := Diff(desired, current)
		// Apply.
		byID := map[string]Entry{}
		for _, c := range current {
			byID[c.ID] = c
		}
		for _, d := range del {
			delete(byID, d.ID)
		}
		for _, u := range update {
			if _, ok := byID[u.ID]; !ok {
				t.Fatalf("round %d: update of an entry that is not there: %+v", round, u)
			}
			byID[u.ID] = u
		}
		for i, c := range create {
			c.ID = fmt.Sprintf("new%d", i)
			byID[c.ID] = c
		}
		var after []Entry
		for _, e := range byID {
			after = append(after, e)
		}
		// Exactly one entry per desired key, with the desired contents.
		want := map[string]Entry{}
		for _, d := range desired {
			want[key(normalize(d))] = normalize(d)
		}
		if len(after) != len(want) {
			t.Fatalf("round %d: %d entries after applying, want %d", round, len(after), len(want))
		}
		for _, e := range after {
			w, ok := want[key(normalize(e))]
			if !ok || !equal(normalize(e), w) {
				t.Fatalf("round %d: entry %+v after applying, want %+v", round, e, w)
			}
		}
		if c, u, d := Diff(desired, after); len(c)+len(u)+len(d) != 0 {
			t.Fatalf("round %d: a second diff still changes %d/%d/%d", round, len(c), len(u), len(d))
		}
	}
}
