package edges

import (
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func workload(ns, name string) Peer {
	return Peer{Kind: PeerWorkload, Namespace: ns, Name: name, WorkloadKind: "Deployment"}
}

func sighting(client, server string, port uint16, at time.Duration, agent string) Sighting {
	return Sighting{
		Key:  Key{Client: workload("shop", client), Server: workload("shop", server), Port: port, Protocol: "TCP"},
		Time: t0.Add(at), ClientPod: "shop/" + client + "-1", ServerPod: "shop/" + server + "-1", Agent: agent,
	}
}

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEdgeFoldsSightings(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "map.db"))
	defer s.Close()
	a := sighting("web", "api", 8080, 10*time.Second, "node-a")
	b := sighting("web", "api", 8080, 5*time.Second, "node-b")
	b.ClientPod, b.DNSName = "shop/web-2", "api.shop.svc.cluster.local"
	c := sighting("web", "api", 9090, 0, "node-a")
	if v := s.Record(Mark{"node-a", t0, 1}, t0, []Sighting{a, b, c}); v != Fresh {
		t.Fatalf("verdict %v", v)
	}
	got := s.Edges()
	if len(got) != 2 {
		t.Fatalf("%d edges, want 2 (one per port): %+v", len(got), got)
	}
	want := Edge{
		Key: a.Key, DNSNames: []string{"api.shop.svc.cluster.local"},
		FirstSeen: t0.Add(5 * time.Second), LastSeen: t0.Add(10 * time.Second), Count: 2,
		ClientPods: []string{"shop/web-1", "shop/web-2"}, ServerPods: []string{"shop/api-1"}, Agents: []string{"node-a", "node-b"},
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("edge\n got %+v\nwant %+v", got[0], want)
	}
}

// A connection reported by both ends' agents counts once and names both agents.
func TestConnectionReportedByTwoAgentsCountsOnce(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "map.db"))
	defer s.Close()
	a := sighting("web", "api", 80, 0, "node-a")
	b := sighting("web", "api", 80, time.Second, "node-b")
	b.Again = true
	s.Record(Mark{"node-a", t0, 1}, t0, []Sighting{a})
	s.Record(Mark{"node-b", t0, 1}, t0, []Sighting{b})
	e := s.Edges()[0]
	if e.Count != 1 || !e.LastSeen.Equal(a.Time) || fmt.Sprint(e.Agents) != "[node-a node-b]" {
		t.Errorf("edge %+v", e)
	}
}

func TestListsKeepTheLatestWithinTheirBound(t *testing.T) {
	var l []string
	for i := range 10 {
		l = remember(l, fmt.Sprint(i), 3)
		l = remember(l, fmt.Sprint(i), 3)
	}
	if !reflect.DeepEqual(l, []string{"7", "8", "9"}) {
		t.Errorf("got %v", l)
	}
	if l = remember(l, "", 3); len(l) != 3 {
		t.Errorf("empty value recorded: %v", l)
	}
}

func TestBatchMarks(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "map.db"))
	defer s.Close()
	one := []Sighting{sighting("web", "api", 80, 0, "node-a")}
	later := t0.Add(time.Hour)
	steps := []struct {
		name  string
		mark  Mark
		want  Verdict
		count uint64
	}{
		{"first", Mark{"node-a", t0, 1}, Fresh, 1},
		{"repeat", Mark{"node-a", t0, 1}, Repeat, 1},
		{"next", Mark{"node-a", t0, 2}, Fresh, 2},
		{"gap", Mark{"node-a", t0, 5}, Fresh, 3},
		{"older in the same process", Mark{"node-a", t0, 4}, Repeat, 3},
		{"restarted agent starts again at 1", Mark{"node-a", later, 1}, Fresh, 4},
		{"previous process, still sending", Mark{"node-a", t0, 6}, Fresh, 5},
		{"previous process, repeat", Mark{"node-a", t0, 6}, Repeat, 5},
		{"restarted process, repeat", Mark{"node-a", later, 1}, Repeat, 5},
		{"another agent", Mark{"node-b", t0, 1}, Fresh, 6},
	}
	for _, st := range steps {
		if seen := s.Seen(st.mark); seen != (st.want == Repeat) {
			t.Errorf("%s: seen %v before recording", st.name, seen)
		}
		if v := s.Record(st.mark, t0, one); v != st.want {
			t.Errorf("%s: verdict %v, want %v", st.name, v, st.want)
		}
		if got := s.Edges()[0].Count; got != st.count {
			t.Errorf("%s: count %d, want %d", st.name, got, st.count)
		}
	}
}

// What was committed is there after a restart, marks included: a batch sent again after
// the restart is not counted twice.
func TestRestartKeepsCommittedEdgesAndMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.db")
	s := open(t, path)
	s.Record(Mark{"node-a", t0, 1}, t0, []Sighting{sighting("web", "api", 80, 0, "node-a"), sighting("api", "db", 5432, time.Second, "node-a")})
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Record(Mark{"node-a", t0, 2}, t0, []Sighting{sighting("web", "api", 80, 2*time.Second, "node-a")})
	before := s.Edges()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if got := s.Edges(); !reflect.DeepEqual(got, before) {
		t.Errorf("after reopening\n got %+v\nwant %+v", got, before)
	}
	if v := s.Record(Mark{"node-a", t0, 2}, t0, nil); v != Repeat {
		t.Errorf("batch recorded before the restart: verdict %v, want Repeat", v)
	}
}

// Concurrent commits each return only once their changes are on disk.
func TestConcurrentCommitsAreDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.db")
	s := open(t, path)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := fmt.Sprintf("node-%d", i)
			s.Record(Mark{agent, t0, 1}, t0, []Sighting{sighting(fmt.Sprintf("c%d", i), "api", 80, 0, agent)})
			if err := s.Commit(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Read the file as committed, without Close's final commit.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := open(t, path)
	defer r.Close()
	if r.Len() != 20 {
		t.Errorf("%d edges on disk, want 20", r.Len())
	}
}

// Marks of processes not heard from are forgotten, in memory and on disk.
func TestForgetMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.db")
	s := open(t, path)
	s.Record(Mark{"node-a", t0, 1}, t0, nil)
	s.Record(Mark{"node-b", t0, 1}, t0.Add(time.Hour), nil)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.ForgetMarks(t0.Add(time.Minute))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if v := s.Record(Mark{"node-a", t0, 1}, t0, nil); v != Fresh {
		t.Errorf("forgotten mark still known after restart")
	}
	if v := s.Record(Mark{"node-b", t0, 1}, t0, nil); v != Repeat {
		t.Errorf("recent mark forgotten")
	}
}

// Edges not seen within the retention are forgotten in memory and on disk, in as many
// transactions as the chunk size asks, and stay forgotten after a restart; an edge seen
// again after being expired starts anew.
func TestExpireOverARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.db")
	s := open(t, path)
	var old []Sighting
	for i := range 5 {
		old = append(old, sighting(fmt.Sprintf("old%d", i), "api", 80, 0, "node-a"))
	}
	fresh := sighting("web", "api", 80, time.Hour, "node-a")
	// Seen early and again late: its last sighting keeps it.
	again := sighting("cron", "api", 80, 0, "node-a")
	againLate := again
	againLate.Time = t0.Add(2 * time.Hour)
	s.Record(Mark{"node-a", t0, 1}, t0, append(old, fresh, again, againLate))
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	// Uncommitted, and expired before any commit: it must not reach the disk as an empty edge.
	s.Record(Mark{"node-a", t0, 2}, t0, []Sighting{sighting("gone", "api", 80, 0, "node-a")})
	n, err := s.Expire(t0.Add(30*time.Minute), 2)
	if err != nil || n != 6 {
		t.Fatalf("expired %d edges (%v), want 6", n, err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	names := func(s *Store) []string {
		var out []string
		for _, e := range s.Edges() {
			out = append(out, e.Client.Name)
		}
		return out
	}
	if got := names(s); !reflect.DeepEqual(got, []string{"cron", "web"}) {
		t.Errorf("in memory after expiry: %v, want cron and web", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if got := names(s); !reflect.DeepEqual(got, []string{"cron", "web"}) {
		t.Errorf("after a restart: %v, want cron and web", got)
	}
	s.Record(Mark{"node-a", t0, 3}, t0, []Sighting{sighting("old0", "api", 80, 3*time.Hour, "node-a")})
	if e := s.Edges()[1]; e.Client.Name != "old0" || e.Count != 1 || !e.FirstSeen.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("an expired edge seen again: %+v, want a new edge counted once", e)
	}
	if n, err := s.Expire(t0, 2); n != 0 || err != nil {
		t.Errorf("nothing is older than the cutoff, yet %d expired (%v)", n, err)
	}
}

func TestOpenFailsOnAnUnusablePath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "map.db")); err == nil {
		t.Error("opened a database in a directory that does not exist")
	}
}

// BenchmarkMemory100kEdges reports the heap the aggregator holds for 100,000 edges
// between 10,000 workloads, loaded from disk as after a restart.
func BenchmarkMemory100kEdges(b *testing.B) {
	path := filepath.Join(b.TempDir(), "map.db")
	s := open(b, path)
	const edges, workloads = 100_000, 10_000
	batch := make([]Sighting, 0, 1000)
	for i := range edges {
		c, sv := i%workloads, (i*7+i/workloads)%workloads
		sg := sighting(fmt.Sprintf("w%d", c), fmt.Sprintf("w%d", sv), uint16(8000+i/workloads), time.Duration(i)*time.Millisecond, fmt.Sprintf("node-%d", i%100))
		sg.DNSName = fmt.Sprintf("w%d.shop.svc.cluster.local", sv)
		batch = append(batch, sg)
		if len(batch) == cap(batch) {
			s.Record(Mark{"loader", t0, uint64(i)}, t0, batch)
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	s, batch = nil, nil
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := open(b, path)
		if r.Len() != edges {
			b.Fatalf("%d edges loaded", r.Len())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		b.ReportMetric(held/(1<<20), "MiB-heap")
		b.ReportMetric(held/edges, "B/edge")
		runtime.KeepAlive(r)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
