// Package aggregator turns the connections and DNS answers the nodes' agents report into
// the network map: each address is resolved to the pod, host-network pod or Service that
// held it when the connection was seen, each pod to its workload identity with the same
// rule as the operators, and each connection is counted on an edge in the store.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"

	"github.com/intentguard/intentguard/internal/mapper/aggregator/dnsnames"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/observation"
)

const (
	// Settle is how long after a connection the aggregator waits before resolving it: a
	// pod's address (or its deletion) reaches the aggregator through the API server, the
	// connection through an agent, in either order. Young pods are attributed, not
	// dropped, and a reused address goes to its new pod.
	Settle = 3 * time.Second
	// Retention is how long the addresses given back are remembered, and so the oldest
	// observation that can be attributed; older ones are dropped.
	Retention = 15 * time.Minute
	// DefaultEdgeRetention is how long an edge is kept after it was last seen, unless the
	// aggregator is told otherwise: longer than a month, so that the calls of monthly jobs
	// are still in the map when the next run comes.
	DefaultEdgeRetention = 40 * 24 * time.Hour
	// MaxSkew is how far in the future (by the aggregator's clock) an observation may be
	// stamped before it is dropped as coming from a broken clock.
	MaxSkew = time.Minute
)

// Aggregator resolves agents' batches into edges.
type Aggregator struct {
	cluster *Cluster
	names   *dnsnames.Names
	recent  *recent
	store   *edges.Store
	log     logr.Logger
	now     func() time.Time

	// EdgeRetention is how long an edge is kept after it was last seen; 0 keeps edges
	// until the database is deleted.
	EdgeRetention time.Duration
}

// New returns an aggregator resolving against cluster and recording into store.
func New(cluster *Cluster, store *edges.Store, log logr.Logger) *Aggregator {
	return &Aggregator{cluster: cluster, names: dnsnames.New(), recent: newRecent(), store: store, log: log, now: time.Now, EdgeRetention: DefaultEdgeRetention}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ErrUnnamed is returned for a batch without an agent name or sequence number, which
// could not be told apart from a repeat.
var ErrUnnamed = errors.New("batch without an agent name or sequence number")

// Result says what became of a batch.
type Result struct {
	// Repeat is true when the batch had been recorded before.
	Repeat bool `json:"repeat,omitempty"`
	// Recorded is the number of connections counted on edges.
	Recorded int `json:"recorded"`
	// Dropped is the number of connections too old or too far in the future.
	Dropped int `json:"dropped"`
	// Ignored is the number of connections that no two workloads can make to each
	// other: over loopback (a socket scan of a node's host namespace finds them), or
	// without valid addresses.
	Ignored int `json:"ignored,omitempty"`
}

// Ingest records a batch and returns once it is on disk, so that an agent may forget a
// batch once it is acknowledged. A batch sent again is acknowledged without being counted
// twice.
func (a *Aggregator) Ingest(ctx context.Context, b observation.Batch) (Result, error) {
	if b.Agent == "" || b.Seq == 0 {
		return Result{}, ErrUnnamed
	}
	mark := edges.Mark{Agent: b.Agent, Boot: b.Boot, Seq: b.Seq}
	if a.store.Seen(mark) {
		// Recorded before, perhaps not committed yet if that commit failed.
		if err := a.store.Commit(); err != nil {
			return Result{}, err
		}
		return Result{Repeat: true}, nil
	}
	now := a.now()
	for _, d := range b.DNSAnswers {
		if a.usable(d.Time, now) {
			a.names.Add(d)
		}
	}
	var res Result
	conns := make([]observation.Connection, 0, len(b.Connections))
	for _, c := range b.Connections {
		if !a.usable(c.Time, now) {
			res.Dropped++
			continue
		}
		if !routable(c.SrcIP) || !routable(c.DstIP) {
			res.Ignored++
			continue
		}
		conns = append(conns, c)
	}
	sightings, err := a.resolveSettled(ctx, b.Agent, conns)
	if err != nil {
		return Result{}, err
	}
	if a.store.Record(mark, now, sightings) == edges.Repeat {
		res.Repeat = true
	} else {
		res.Recorded = len(sightings)
	}
	if err := a.store.Commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// routable reports whether an address can be a workload's or a host's on the network.
func routable(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && !a.IsMulticast() && !a.Unmap().IsLoopback()
}

// usable reports whether an observation time can be attributed: within Retention before
// now and at most MaxSkew after it.
func (a *Aggregator) usable(t, now time.Time) bool {
	return !t.Before(now.Add(-Retention)) && !t.After(now.Add(MaxSkew))
}

// resolveSettled resolves connections once Settle has passed since the latest of them
// was seen, so that the informers have caught up with the pods that started or stopped
// around it: a pod's first connection is not taken for an external one, and a connection
// to a reused address is not given to the address's previous pod because its deletion
// was not seen yet.
func (a *Aggregator) resolveSettled(ctx context.Context, agent string, conns []observation.Connection) ([]edges.Sighting, error) {
	var latest time.Time
	for _, c := range conns {
		if c.Time.After(latest) {
			latest = c.Time
		}
	}
	if wait := Settle - a.now().Sub(latest); len(conns) > 0 && wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("waiting for the cluster view to catch up with %d connections: %w", len(conns), err)
		}
	}
	out := make([]edges.Sighting, 0, len(conns))
	for _, c := range conns {
		s, err := a.resolve(ctx, agent, c)
		if err != nil {
			return nil, err
		}
		s.Again = a.recent.again(agent, c)
		out = append(out, s)
	}
	return out, nil
}

// resolve turns a connection into a sighting.
func (a *Aggregator) resolve(ctx context.Context, agent string, c observation.Connection) (edges.Sighting, error) {
	name, _ := a.names.Name(c.SrcIP, c.DstIP, c.Time)
	client, clientPod, err := a.cluster.peer(ctx, c.SrcIP, 0, c.Time, "")
	if err != nil {
		return edges.Sighting{}, err
	}
	server, serverPod, err := a.cluster.peer(ctx, c.DstIP, c.DstPort, c.Time, name)
	if err != nil {
		return edges.Sighting{}, err
	}
	proto := string(c.Protocol)
	if proto == "" {
		proto = string(observation.ProtocolTCP)
	}
	return edges.Sighting{
		Key:     edges.Key{Client: client, Server: server, Port: c.DstPort, Protocol: proto},
		Time:    c.Time,
		DNSName: name, ClientPod: clientPod, ServerPod: serverPod, Agent: agent,
	}, nil
}

// Run prunes what can no longer be used until ctx ends: addresses given back more than
// Retention ago, DNS answers past their TTL and edges not seen within EdgeRetention
// (also at once, for a map that aged while the aggregator was down).
func (a *Aggregator) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	a.expireEdges()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := a.now()
			a.cluster.Prune(now.Add(-Retention))
			a.names.Prune(now)
			a.store.ForgetMarks(now.Add(-2 * Retention))
			a.recent.prune(now.Add(-SameConnection))
			a.expireEdges()
		}
	}
}

// expireEdges forgets the edges not seen within EdgeRetention.
func (a *Aggregator) expireEdges() {
	if a.EdgeRetention <= 0 {
		return
	}
	n, err := a.store.Expire(a.now().Add(-a.EdgeRetention), edges.ExpireChunk)
	if err != nil {
		a.log.Error(err, "forgetting edges not seen within the retention; trying again in a minute")
	}
	if n > 0 {
		a.log.Info("forgot edges not seen within the retention", "edges", n, "retention", a.EdgeRetention)
	}
}

// Edges returns the map.
func (a *Aggregator) Edges() []edges.Edge { return a.store.Edges() }
