package aggregator

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// A map that aged while the aggregator was down is trimmed as soon as it runs, to the
// edges seen within EdgeRetention; a retention of 0 keeps every edge.
func TestRunForgetsEdgesPastTheRetention(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		retention time.Duration
		want      int
	}{{DefaultEdgeRetention, 1}, {0, 2}} {
		store, err := edges.Open(filepath.Join(t.TempDir(), "map.db"))
		if err != nil {
			t.Fatal(err)
		}
		peer := func(name string) edges.Peer {
			return edges.Peer{Kind: edges.PeerWorkload, Namespace: "shop", Name: name}
		}
		store.Record(edges.Mark{Agent: "node-a", Boot: t0, Seq: 1}, t0, []edges.Sighting{
			{Key: edges.Key{Client: peer("monthly-report"), Server: peer("db"), Port: 5432, Protocol: "TCP"}, Time: t0},
			{Key: edges.Key{Client: peer("web"), Server: peer("db"), Port: 5432, Protocol: "TCP"}, Time: t0.Add(30 * 24 * time.Hour)},
		})
		a := New(nil, store, testr.New(t))
		a.EdgeRetention = tc.retention
		a.now = func() time.Time { return t0.Add(DefaultEdgeRetention + 24*time.Hour) }
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a.Run(ctx)
		if got := store.Len(); got != tc.want {
			t.Errorf("retention %s: %d edges after start, want %d", tc.retention, got, tc.want)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
