package timeline

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ip = netip.MustParseAddr("10.0.0.7")
)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func holders[V any](ivs []*Interval[V]) []string {
	var out []string
	for _, iv := range ivs {
		out = append(out, iv.Holder)
	}
	return out
}

func TestExclusiveAttribution(t *testing.T) {
	tl := NewExclusive[string]()
	// old holds ip from 0; deleted at 100; new, created at 90 (before old's deletion was
	// seen), gets ip at 110.
	tl.Set("old", "old-pod", []netip.Addr{ip}, at(0), at(5))
	tl.Release("old", at(100))
	tl.Set("new", "new-pod", []netip.Addr{ip}, at(90), at(110))
	cases := []struct {
		t    int
		want string
	}{
		{-1, ""}, {0, "old"}, {50, "old"}, {99, "old"}, {100, "new"}, {105, "new"}, {200, "new"},
	}
	for _, c := range cases {
		got := holders(tl.At(ip, at(c.t)))
		if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0] != c.want) {
			t.Errorf("at %ds: holders %v, want %q", c.t, got, c.want)
		}
	}
}

// A new holder reported before the old one's release ends the old tenure: an address has
// one pod at a time.
func TestExclusiveTakeoverEndsPreviousHolder(t *testing.T) {
	tl := NewExclusive[string]()
	tl.Set("old", "", []netip.Addr{ip}, at(0), at(1))
	tl.Set("new", "", []netip.Addr{ip}, at(30), at(60))
	tl.Release("old", at(70)) // the late deletion must not cut the new tenure
	for s, want := range map[int]string{59: "old", 60: "new", 80: "new"} {
		if got := holders(tl.At(ip, at(s))); len(got) != 1 || got[0] != want {
			t.Errorf("at %ds: holders %v, want %s", s, got, want)
		}
	}
}

func TestSetMovesAddressesAndKeepsValueCurrent(t *testing.T) {
	tl := NewExclusive[string]()
	other := netip.MustParseAddr("fd00::7")
	tl.Set("p", "v1", []netip.Addr{ip}, at(0), at(1))
	tl.Set("p", "v2", []netip.Addr{other}, at(0), at(10))
	if got := tl.At(ip, at(20)); len(got) != 0 {
		t.Errorf("dropped address still held at 20s: %v", holders(got))
	}
	if got := tl.At(ip, at(5)); len(got) != 1 || got[0].Value != "v1" {
		t.Errorf("dropped address at 5s: %v", got)
	}
	if got := tl.At(other, at(20)); len(got) != 1 || got[0].Value != "v2" {
		t.Errorf("new address at 20s: %v", got)
	}
	tl.Set("p", "v3", []netip.Addr{other}, at(0), at(30))
	if got := tl.At(other, at(20)); len(got) != 1 || got[0].Value != "v3" {
		t.Errorf("value after update: %v", got)
	}
}

func TestIPv4MappedAddressesAreTheSameAddress(t *testing.T) {
	tl := NewExclusive[string]()
	tl.Set("p", "", []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.7")}, at(0), at(1))
	if got := holders(tl.At(ip, at(2))); len(got) != 1 {
		t.Errorf("mapped address not found as IPv4: %v", got)
	}
}

func TestSharedHoldersOverlap(t *testing.T) {
	tl := NewShared[string]()
	tl.Set("a", "", []netip.Addr{ip}, at(0), at(1))
	tl.Set("b", "", []netip.Addr{ip}, at(0), at(2))
	if got := holders(tl.At(ip, at(3))); len(got) != 2 {
		t.Errorf("shared address: holders %v, want both", got)
	}
	tl.Release("a", at(4))
	if got := holders(tl.At(ip, at(5))); len(got) != 1 || got[0] != "b" {
		t.Errorf("after release: holders %v, want [b]", got)
	}
}

func TestPruneForgetsEndedIntervalsOnly(t *testing.T) {
	tl := NewExclusive[string]()
	other := netip.MustParseAddr("10.0.0.8")
	tl.Set("gone", "", []netip.Addr{ip}, at(0), at(1))
	tl.Release("gone", at(10))
	tl.Set("live", "", []netip.Addr{other}, at(0), at(1))
	tl.Prune(at(20))
	if got := tl.At(ip, at(5)); len(got) != 0 {
		t.Errorf("pruned interval still found: %v", holders(got))
	}
	if got := tl.At(other, at(5)); len(got) != 1 {
		t.Errorf("open interval pruned")
	}
}

// Property: whatever the order of pod events, an exclusive address has at most one holder
// at any moment, and from the moment a holder's claim is seen until its release or the
// next claim, it is that holder.
func TestExclusiveNeverAttributesToTwoHolders(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	for round := 0; round < 200; round++ {
		tl := NewExclusive[int]()
		type claim struct {
			holder   string
			from, to int // seen claimed from..to (to -1: still)
		}
		truth := map[netip.Addr][]claim{}
		now := 0
		for step := 0; step < 30; step++ {
			now += 1 + r.IntN(20)
			a := addrs[r.IntN(len(addrs))]
			cl := truth[a]
			if len(cl) > 0 && cl[len(cl)-1].to < 0 && r.IntN(3) == 0 {
				last := &cl[len(cl)-1]
				tl.Release(last.holder, at(now))
				last.to = now
				continue
			}
			h := string(rune('a'+round%26)) + string(rune('0'+step%10)) + string(rune('A'+step/10))
			if len(cl) > 0 && cl[len(cl)-1].to < 0 {
				cl[len(cl)-1].to = now
			}
			tl.Set(h, step, []netip.Addr{a}, at(now-r.IntN(60)), at(now))
			truth[a] = append(cl, claim{holder: h, from: now, to: -1})
		}
		for _, a := range addrs {
			for s := 0; s <= now+5; s++ {
				got := holders(tl.At(a, at(s)))
				if len(got) > 1 {
					t.Fatalf("round %d: %s at %ds has holders %v", round, a, s, got)
				}
				for _, c := range truth[a] {
					if s >= c.from && (c.to < 0 || s < c.to) && (len(got) != 1 || got[0] != c.holder) {
						t.Fatalf("round %d: %s at %ds: holders %v, want %s", round, a, s, got, c.holder)
					}
				}
			}
		}
	}
}
