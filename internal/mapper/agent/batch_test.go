package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// recordingAggregator accepts batches over HTTP while up, and answers 503 while down.
type recordingAggregator struct {
	mu      sync.Mutex
	down    bool
	batches []observation.Batch
}

func (r *recordingAggregator) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.URL.Path != BatchPath || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	if r.down {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	var b observation.Batch
	if err := json.NewDecoder(req.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.batches = append(r.batches, b)
}

func (r *recordingAggregator) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *recordingAggregator) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, b := range r.batches {
		out = append(out, b.Seq)
	}
	return out
}

func testConn(port uint16) observation.Connection {
	return observation.Connection{SrcIP: v4a, SrcPort: port, DstIP: v4b, DstPort: 80,
		Protocol: observation.ProtocolTCP, Source: observation.SourceSYN}
}

func TestBatcherSendsOverHTTPInOrderAndRetries(t *testing.T) {
	agg := &recordingAggregator{}
	srv := httptest.NewServer(agg)
	defer srv.Close()
	b := NewBatcher("node-1", 2, HTTPSender{URL: srv.URL})
	ctx := context.Background()

	// Duplicates within a batch (a SYN seen on two interfaces) are sent once.
	b.AddConnection(testConn(1))
	b.AddConnection(testConn(1))
	answer := observation.DNSAnswer{ClientIP: v4a, Name: "a.test", IPs: []netip.Addr{v4b}}
	b.AddDNSAnswer(answer)
	b.AddDNSAnswer(answer)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := agg.batches[0]; got.Agent != "node-1" || got.Seq != 1 || len(got.Connections) != 1 || len(got.DNSAnswers) != 1 {
		t.Fatalf("first batch = %+v", got)
	}
	if !reflect.DeepEqual(agg.batches[0].Connections[0], testConn(1)) {
		t.Errorf("connection changed on the wire: %+v", agg.batches[0].Connections[0])
	}
	// An empty flush sends nothing.
	if err := b.Flush(ctx); err != nil || len(agg.seqs()) != 1 {
		t.Fatalf("empty flush: err %v, batches %v", err, agg.seqs())
	}

	// While the aggregator is down, batches wait; beyond MaxPending the oldest go.
	agg.setDown(true)
	for port := uint16(2); port <= 4; port++ {
		b.AddConnection(testConn(port))
		if err := b.Flush(ctx); err == nil {
			t.Fatal("flush to a down aggregator reported success")
		}
	}
	if got := b.Dropped(); got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
	agg.setDown(false)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := agg.seqs(), []uint64{1, 3, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered sequence numbers = %v, want %v (2 dropped)", got, want)
	}
	// A connection seen again in a later batch is sent again: duplicates are only
	// removed within a batch.
	b.AddConnection(testConn(1))
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := agg.seqs(); got[len(got)-1] != 5 {
		t.Errorf("sequence numbers = %v, want 5 last", got)
	}
}
