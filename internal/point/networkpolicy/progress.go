package networkpolicy

import (
	"context"
	"errors"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Progress knows which servers have changes the NetworkPolicy reconciler has not carried
// out yet, and how its last attempt at each ended. Status uses it to tell "not written
// yet" (say nothing, the policy's watch event will come) from "tried and failed" (report
// Pending with the reason), so a burst of changes costs one status write per ClientIntents
// instead of a Pending and a Ready.
type Progress struct {
	mu      sync.Mutex
	seq     uint64
	servers map[reconcile.Request]*serverProgress
	// Settled receives each server whose outstanding changes were just carried out or
	// failed, so status waiting on it can look again.
	Settled chan event.TypedGenericEvent[reconcile.Request]
}

type serverProgress struct {
	// marked is the sequence number of the last change seen; zero once carried out.
	marked uint64
	// since is when the server last went from carried out to outstanding.
	since time.Time
	// failed is true when the last attempt failed.
	failed bool
	// blocked says what keeps the last attempt from succeeding until someone acts (a
	// policy of the same name that is not the server's own); transient errors leave it empty.
	blocked string
	// blockedBy is that policy.
	blockedBy client.ObjectKey
}

// settledBuffer bounds the notifications not yet taken by the status controller; beyond
// it they are dropped and status finds out at its next periodic look.
const settledBuffer = 4096

func newProgress() *Progress {
	return &Progress{servers: map[reconcile.Request]*serverProgress{}, Settled: make(chan event.TypedGenericEvent[reconcile.Request], settledBuffer)}
}

// enqueueServers is the NetworkPolicy controller's event handler: it enqueues the servers
// an event maps to and marks them outstanding, so no watch can enqueue without marking.
func (p *Progress) enqueueServers(f handler.MapFunc) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		reqs := f(ctx, o)
		p.mark(reqs...)
		return reqs
	})
}

func (p *Progress) mark(reqs ...reconcile.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range reqs {
		p.seq++
		s := p.servers[r]
		if s == nil {
			s = &serverProgress{}
			p.servers[r] = s
		}
		if s.marked == 0 {
			s.since = time.Now()
		}
		s.marked = p.seq
	}
}

// begin returns the token a reconcile of the server passes to finish.
func (p *Progress) begin() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// finish records how a reconcile that started at token ended. Changes marked after it
// started stay outstanding: the queue holds another reconcile for them.
func (p *Progress) finish(r reconcile.Request, token uint64, err error) {
	if p.record(r, token, err) {
		select {
		case p.Settled <- event.TypedGenericEvent[reconcile.Request]{Object: r}:
		default:
		}
	}
}

// record notes the outcome and reports whether the server had been outstanding.
func (p *Progress) record(r reconcile.Request, token uint64, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	if err != nil {
		if s == nil {
			s = &serverProgress{marked: token, since: time.Now()}
			p.servers[r] = s
		}
		s.failed, s.blocked, s.blockedBy = true, "", client.ObjectKey{}
		var taken nameTakenError
		if errors.As(err, &taken) {
			s.blocked, s.blockedBy = taken.Error(), taken.key
		}
		return true
	}
	if s == nil {
		return false
	}
	s.failed, s.blocked, s.blockedBy = false, "", client.ObjectKey{}
	if s.marked <= token {
		delete(p.servers, r)
	}
	return true
}

// State says whether the server has outstanding changes (and since when) and what blocks
// it, if something does.
func (p *Progress) State(r reconcile.Request) (outstanding bool, since time.Time, blocked string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	if s == nil {
		return false, time.Time{}, ""
	}
	return s.marked != 0, s.since, s.blocked
}

// blockedOn returns the servers whose last attempt failed because the policy held their
// name: a change to it (its deletion, say) may unblock them.
func (p *Progress) blockedOn(policy client.ObjectKey) []reconcile.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []reconcile.Request
	for r, s := range p.servers {
		if s.blocked != "" && s.blockedBy == policy {
			out = append(out, r)
		}
	}
	return out
}

// serversOfPolicy maps a policy's events to the server it records and to the servers it
// blocks.
func (p *Progress) serversOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return append(ServerOfPolicy(ctx, o), p.blockedOn(client.ObjectKeyFromObject(o))...)
}

// failed reports whether the last attempt at the server failed.
func (p *Progress) failed(r reconcile.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	return s != nil && s.failed
}

// Backlog counts the servers with changes in hand that are neither failing nor older than
// stale: the NetworkPolicy controller's work still to do.
func (p *Progress) Backlog(stale time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.servers {
		if s.marked != 0 && !s.failed && time.Since(s.since) < stale {
			n++
		}
	}
	return n
}
