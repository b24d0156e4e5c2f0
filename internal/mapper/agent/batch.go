package agent

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// Sender delivers a batch to the aggregator.
type Sender interface {
	// Send delivers b, returning an error if the aggregator did not accept it.
	Send(ctx context.Context, b observation.Batch) error
}

// connKey identifies a connection: a SYN seen on both veth ends of a bridged path, a
// retransmitted SYN and a socket found on each scan are all one connection.
type connKey struct {
	src, dst netip.AddrPort
}

// keyOf gives a connection's identity.
func keyOf(c observation.Connection) connKey {
	return connKey{netip.AddrPortFrom(c.SrcIP, c.SrcPort), netip.AddrPortFrom(c.DstIP, c.DstPort)}
}

// dnsKey identifies a response: the same answer seen on two interfaces is one answer.
type dnsKey struct {
	client netip.Addr
	name   string
}

// Batcher collects observations and hands them to a Sender in numbered batches.
// Duplicates within a batch are dropped. Batches the Sender refused are kept, in order
// and under the same number, up to MaxPending of them; past that the oldest are dropped,
// so an aggregator outage costs the agent bounded memory.
type Batcher struct {
	// Agent names the agent in every batch.
	Agent string
	// MaxPending is how many undelivered batches are kept.
	MaxPending int
	// Sender delivers batches.
	Sender Sender

	mu      sync.Mutex
	boot    time.Time
	seq     uint64
	current observation.Batch
	conns   map[connKey]bool
	answers map[dnsKey]bool
	pending []observation.Batch
	dropped uint64
}

// NewBatcher starts numbering batches from now.
func NewBatcher(agent string, maxPending int, sender Sender) *Batcher {
	return &Batcher{Agent: agent, MaxPending: maxPending, Sender: sender, boot: time.Now()}
}

// AddConnection records a connection unless the current batch has it already.
func (b *Batcher) AddConnection(c observation.Connection) {
	key := keyOf(c)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		b.conns = map[connKey]bool{}
	}
	if b.conns[key] {
		return
	}
	b.conns[key] = true
	b.current.Connections = append(b.current.Connections, c)
}

// AddDNSAnswer records an answer unless the current batch has the same one already.
func (b *Batcher) AddDNSAnswer(a observation.DNSAnswer) {
	key := dnsKey{a.ClientIP, a.Name}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.answers == nil {
		b.answers = map[dnsKey]bool{}
	}
	if b.answers[key] {
		return
	}
	b.answers[key] = true
	b.current.DNSAnswers = append(b.current.DNSAnswers, a)
}

// Dropped is how many batches were given up because the aggregator was unreachable for
// longer than MaxPending flushes.
func (b *Batcher) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Flush closes the current batch (if it has anything) and sends every pending batch in
// order, stopping at the first failure, which it returns.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	if len(b.current.Connections)+len(b.current.DNSAnswers) > 0 {
		b.seq++
		b.current.Agent, b.current.Boot, b.current.Seq = b.Agent, b.boot, b.seq
		b.pending = append(b.pending, b.current)
		b.current = observation.Batch{}
		b.conns, b.answers = nil, nil
	}
	if over := len(b.pending) - max(b.MaxPending, 1); over > 0 {
		b.pending = b.pending[over:]
		b.dropped += uint64(over)
	}
	pending := b.pending
	b.mu.Unlock()

	// Sending happens outside the lock so capture is never held up by the network.
	sent := 0
	var err error
	for _, batch := range pending {
		if err = b.Sender.Send(ctx, batch); err != nil {
			break
		}
		sent++
	}
	b.mu.Lock()
	b.pending = b.pending[sent:]
	b.mu.Unlock()
	return err
}
