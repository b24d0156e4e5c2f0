package networkpolicy

import (
	"context"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/internal/point/burst"
)

// progress knows which servers have changes the NetworkPolicy reconciler has not carried
// out yet, since when, and how its last attempt at each ended. It is the point's one
// memory of waits: a target whose change is in hand is reported as such with the time it
// was taken in hand, so status says nothing of a wait until it lasts, and a burst of
// changes costs one status write per ClientIntents instead of a Pending and a Ready.
type progress struct {
	mu      sync.Mutex
	seq     uint64
	servers map[reconcile.Request]*serverProgress
	// activity tells whether the reconciler works through its queue.
	activity burst.Activity
}

type serverProgress struct {
	// marked is the sequence number of the last change seen; zero once carried out.
	marked uint64
	// since is when the server last went from carried out to outstanding.
	since time.Time
	// failed is true when the last attempt failed; failedSince is when the attempts
	// began to fail.
	failed      bool
	failedSince time.Time
}

func newProgress() *progress {
	return &progress{servers: map[reconcile.Request]*serverProgress{}}
}

// enqueueServers is the NetworkPolicy controller's event handler: it enqueues the servers
// an event maps to and marks them outstanding, so no watch can enqueue without marking.
func (p *progress) enqueueServers(f handler.MapFunc) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		reqs := f(ctx, o)
		p.mark(reqs...)
		return reqs
	})
}

func (p *progress) mark(reqs ...reconcile.Request) {
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
func (p *progress) begin() uint64 {
	p.activity.Begin()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// finish records how a reconcile that started at token ended. Changes marked after it
// started stay outstanding: the queue holds another reconcile for them.
func (p *progress) finish(r reconcile.Request, token uint64, err error) {
	p.activity.End()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	if err != nil {
		if s == nil {
			s = &serverProgress{marked: token, since: time.Now()}
			p.servers[r] = s
		}
		if !s.failed {
			s.failedSince = time.Now()
		}
		s.failed = true
		return
	}
	if s == nil {
		return
	}
	s.failed = false
	if s.marked <= token {
		delete(p.servers, r)
	}
}

// inHandSince returns when the server's outstanding changes were taken in hand. A server
// with none is marked now: the caller saw a change the reconciler has not carried out
// (its event may not have reached the reconciler's queue yet), and the wait starts now.
func (p *progress) inHandSince(r reconcile.Request) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	if s == nil || s.marked == 0 {
		p.seq++
		if s == nil {
			s = &serverProgress{}
			p.servers[r] = s
		}
		s.marked, s.since = p.seq, time.Now()
	}
	return s.since
}

// moving reports whether the reconciler is working through its queue (burst.Activity).
func (p *progress) moving() bool {
	return p.activity.Moving()
}

// failingSince returns when the attempts at the server began to fail, now for an attempt
// that is the first to fail.
func (p *progress) failingSince(r reconcile.Request) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.servers[r]; s != nil && s.failed {
		return s.failedSince
	}
	return time.Now()
}

// failed reports whether the last attempt at the server failed.
func (p *progress) failed(r reconcile.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	return s != nil && s.failed
}
