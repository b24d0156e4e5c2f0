package aggregator

import (
	"net/netip"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

func TestRecentCountsAConnectionOncePerPairOfAgents(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := observation.Connection{Time: t0, SrcIP: netip.MustParseAddr("10.0.0.1"), SrcPort: 40000,
		DstIP: netip.MustParseAddr("10.0.0.2"), DstPort: 80}
	other := c
	other.SrcPort = 40001
	mapped := c
	mapped.SrcIP = netip.MustParseAddr("::ffff:10.0.0.1")
	later := c
	later.Time = t0.Add(SameConnection)
	r := newRecent()
	steps := []struct {
		name  string
		agent string
		c     observation.Connection
		want  bool
	}{
		{"first report", "node-a", c, false},
		{"the other end's agent", "node-b", c, true},
		{"the other end's agent, mapped address", "node-b", mapped, true},
		{"another client port", "node-b", other, false},
		{"the same agent again (a new connection on a reused port)", "node-a", c, false},
		{"after the window", "node-b", later, false},
	}
	for _, s := range steps {
		if got := r.again(s.agent, s.c); got != s.want {
			t.Errorf("%s: again = %v, want %v", s.name, got, s.want)
		}
	}
	r.prune(t0.Add(time.Second))
	if len(r.seen) != 1 {
		t.Errorf("after prune %d connections remembered, want 1", len(r.seen))
	}
}
