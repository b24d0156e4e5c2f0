// Package agent is the network mapper's per-node agent: it captures TCP SYNs and DNS
// responses on every interface of its network namespace (AF_PACKET with a kernel BPF
// filter, no cgo), scans each network namespace's established TCP sockets for
// connections older than the agent, and sends what it saw to the aggregator in batches.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// Agent ties a capture, a socket scanner and a batcher together.
type Agent struct {
	// Node names the node in every observation.
	Node string
	// Capture is the open packet capture; the agent closes it when Run returns.
	Capture *Capture
	// Scanner finds connections opened before the agent started.
	Scanner Scanner
	// ScanInterval is how often the socket tables are read; 0 scans only at start.
	ScanInterval time.Duration
	// Batcher collects and sends observations.
	Batcher *Batcher
	// FlushInterval is how often a batch is sent.
	FlushInterval time.Duration
	// Log receives errors that do not stop the agent (an unreachable aggregator).
	Log logr.Logger

	// A connection is reported once, by its SYN or by the first scan that finds it: known
	// holds what the last scan found, synced what SYNs reported since.
	mu     sync.Mutex
	known  map[connKey]bool
	synced map[connKey]bool
	// netns maps addresses to the network namespaces that held them at the last scan.
	netns map[netip.Addr]uint64
}

// Run captures, scans and sends until ctx ends, then sends what it still holds once.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Capture.Close()
	var wg sync.WaitGroup
	captureErr := make(chan error, 1)
	capCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	wg.Go(func() {
		p := Parser{Node: a.Node}
		var conn observation.Connection
		var answer observation.DNSAnswer
		captureErr <- a.Capture.Run(capCtx, func(pkt []byte, at time.Time) {
			switch p.Parse(pkt, at, &conn, &answer) {
			case KindSYN:
				if a.firstSighting(conn) {
					a.Batcher.AddConnection(conn)
				}
			case KindDNS:
				for ok := true; ok; ok = p.NextAnswer(at, &answer) {
					answer.NetNS = a.netnsOf(answer.ClientIP)
					a.Batcher.AddDNSAnswer(answer)
				}
			}
		})
	})
	a.scan()
	flush := time.NewTicker(a.FlushInterval)
	defer flush.Stop()
	var scanTick <-chan time.Time
	if a.ScanInterval > 0 {
		t := time.NewTicker(a.ScanInterval)
		defer t.Stop()
		scanTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			stopCapture()
			wg.Wait()
			// The run's context is over; the last flush gets a short one of its own.
			last, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := a.Batcher.Flush(last); err != nil {
				return fmt.Errorf("sending the last observations: %w", err)
			}
			return nil
		case err := <-captureErr:
			if err == nil {
				err = errors.New("capture stopped")
			}
			return fmt.Errorf("capturing on node %s: %w", a.Node, err)
		case <-scanTick:
			a.scan()
		case <-flush.C:
			if err := a.Batcher.Flush(ctx); err != nil {
				a.Log.Error(err, "sending observations; keeping them for the next try")
			}
		}
	}
}

// firstSighting records a SYN's connection and says whether it is new: a scan that ran
// between the handshake and this packet being read may have reported it already.
func (a *Agent) firstSighting(c observation.Connection) bool {
	k := keyOf(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.known[k] {
		return false
	}
	if a.synced == nil {
		a.synced = map[connKey]bool{}
	}
	a.synced[k] = true
	return true
}

// netnsOf returns the inode of the network namespace that held addr at the last scan, or
// 0 if none or several did.
func (a *Agent) netnsOf(addr netip.Addr) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.netns[addr]
}

// scan reads the socket tables and records the connections neither an earlier scan nor
// a SYN reported; a failed scan is retried at the next interval, and a partial one still
// counts for the namespaces it read.
func (a *Agent) scan() {
	res, err := a.Scanner.Scan(time.Now())
	if err != nil {
		a.Log.Error(err, "scanning established sockets")
		if len(res.Connections) == 0 && len(res.NetNS) == 0 {
			return
		}
	}
	found := make(map[connKey]bool, len(res.Connections))
	a.mu.Lock()
	a.netns = res.NetNS
	var fresh []observation.Connection
	for _, c := range res.Connections {
		k := keyOf(c)
		found[k] = true
		if !a.known[k] && !a.synced[k] {
			fresh = append(fresh, c)
		}
	}
	// Closed connections leave known, so its size follows the established sockets.
	a.known, a.synced = found, nil
	a.mu.Unlock()
	for _, c := range fresh {
		a.Batcher.AddConnection(c)
	}
}
