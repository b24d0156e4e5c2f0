package observation

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// randomBatch fills every field, so a field that does not survive JSON shows.
func randomBatch(r *rand.Rand) Batch {
	addr := func() netip.Addr {
		if r.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
		var b [16]byte
		b[0], b[15] = 0xfd, byte(r.IntN(256))
		return netip.AddrFrom16(b)
	}
	at := time.Unix(r.Int64N(1<<32), r.Int64N(1e9)).UTC()
	b := Batch{Agent: "node-1", Boot: at.Add(-time.Hour), Seq: r.Uint64()}
	for range r.IntN(4) {
		b.Connections = append(b.Connections, Connection{
			Time: at, Node: "node-1", NetNS: r.Uint64(), SrcIP: addr(), SrcPort: uint16(r.IntN(65536)),
			DstIP: addr(), DstPort: uint16(r.IntN(65536)), Protocol: ProtocolTCP,
			Source: []Source{SourceSYN, SourceSocketScan}[r.IntN(2)],
		})
	}
	for range r.IntN(4) {
		b.DNSAnswers = append(b.DNSAnswers, DNSAnswer{
			Time: at, Node: "node-1", NetNS: r.Uint64(), ClientIP: addr(), Name: "svc.ns.svc.cluster.local",
			CNAMEs: []string{"a.test", "b.test"}[:r.IntN(3)], IPs: []netip.Addr{addr(), addr()},
			TTL: time.Duration(r.IntN(86400)) * time.Second,
		})
	}
	return b
}

// TestBatchSurvivesJSON is the wire contract between agent and aggregator: whatever the
// agent puts in a batch, the aggregator decodes the same.
func TestBatchSurvivesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		in := randomBatch(r)
		for j := range in.DNSAnswers {
			if len(in.DNSAnswers[j].CNAMEs) == 0 {
				in.DNSAnswers[j].CNAMEs = nil // omitted when empty, so nil comes back
			}
		}
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out Batch
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("batch %d changed on the wire:\n in %+v\nout %+v\njson %s", i, in, out, raw)
		}
	}
}
