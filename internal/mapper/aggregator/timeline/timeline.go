// Package timeline records which holder had an IP address when: the intervals during
// which a pod (or a Service) held an address, so that an observation is attributed to the
// holder of its address at the moment it was seen, not to whoever holds it now.
package timeline

import (
	"net/netip"
	"sync"
	"time"
)

// Interval is one holder's tenure of an address. End is zero while the holder still has it.
type Interval[V any] struct {
	// Holder identifies the holder (a pod's or Service's UID).
	Holder string
	// Value is what the holder is (the pod or Service).
	Value V
	// Start is the earliest the holder can have had the address.
	Start time.Time
	// End is when the holder was seen to give it up.
	End time.Time
}

func (iv *Interval[V]) covers(t time.Time) bool {
	return !t.Before(iv.Start) && (iv.End.IsZero() || t.Before(iv.End))
}

// Timeline holds the intervals of every address. In an exclusive timeline an address has
// one holder at a time (pod IPs, ClusterIPs): a new holder ends the previous one's tenure
// and its own starts no earlier than that, so intervals never overlap and IP reuse cannot
// attribute an observation to two holders. In a shared timeline holders overlap (the pods
// on a node's host network all have the node's address). Safe for concurrent use.
type Timeline[V any] struct {
	shared bool

	mu    sync.RWMutex
	addrs map[netip.Addr][]*Interval[V]
	// open holds each holder's addresses with an open interval.
	open map[string]map[netip.Addr]struct{}
}

// NewExclusive returns a timeline whose addresses have one holder at a time.
func NewExclusive[V any]() *Timeline[V] {
	return &Timeline[V]{addrs: map[netip.Addr][]*Interval[V]{}, open: map[string]map[netip.Addr]struct{}{}}
}

// NewShared returns a timeline whose addresses may have several holders at once.
func NewShared[V any]() *Timeline[V] {
	return &Timeline[V]{shared: true, addrs: map[netip.Addr][]*Interval[V]{}, open: map[string]map[netip.Addr]struct{}{}}
}

// Set records that holder has exactly addrs as of now, with value: addresses it no longer
// lists end at now; new ones start at start (its earliest possible start, such as the
// pod's creation). A holder that keeps an address keeps its interval and gets the new
// value. In an exclusive timeline an open interval of another holder ends at now, and the
// new one starts no earlier than the last one of that address ended.
func (tl *Timeline[V]) Set(holder string, value V, addrs []netip.Addr, start, now time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	for a := range tl.open[holder] {
		if !want[a] {
			tl.end(a, holder, now)
		}
	}
	for a := range want {
		tl.claim(a, holder, value, start, now)
	}
}

// Release records that holder has no address any more as of at.
func (tl *Timeline[V]) Release(holder string, at time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for a := range tl.open[holder] {
		tl.end(a, holder, at)
	}
}

// claim opens holder's interval of addr; the caller holds the lock.
func (tl *Timeline[V]) claim(addr netip.Addr, holder string, value V, start, now time.Time) {
	ivs := tl.addrs[addr]
	for _, iv := range ivs {
		if iv.Holder == holder && iv.End.IsZero() {
			iv.Value = value
			return
		}
	}
	if !tl.shared {
		for _, iv := range ivs {
			if iv.End.IsZero() {
				tl.end(addr, iv.Holder, now)
			}
			start = maxTime(start, iv.End)
		}
	}
	if start.After(now) {
		start = now
	}
	tl.addrs[addr] = append(ivs, &Interval[V]{Holder: holder, Value: value, Start: start})
	if tl.open[holder] == nil {
		tl.open[holder] = map[netip.Addr]struct{}{}
	}
	tl.open[holder][addr] = struct{}{}
}

// end closes holder's open interval of addr at at; the caller holds the lock.
func (tl *Timeline[V]) end(addr netip.Addr, holder string, at time.Time) {
	for _, iv := range tl.addrs[addr] {
		if iv.Holder == holder && iv.End.IsZero() {
			iv.End = maxTime(at, iv.Start)
		}
	}
	delete(tl.open[holder], addr)
	if len(tl.open[holder]) == 0 {
		delete(tl.open, holder)
	}
}

// At returns the intervals of addr that cover t: at most one in an exclusive timeline.
// The intervals are shared: read only.
func (tl *Timeline[V]) At(addr netip.Addr, t time.Time) []*Interval[V] {
	addr = addr.Unmap()
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	var out []*Interval[V]
	for _, iv := range tl.addrs[addr] {
		if iv.covers(t) {
			out = append(out, iv)
		}
	}
	return out
}

// Prune forgets the intervals that ended before cutoff: observations older than that can
// no longer be attributed, and the timeline stays as large as the cluster, not its history.
func (tl *Timeline[V]) Prune(cutoff time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for a, ivs := range tl.addrs {
		kept := ivs[:0]
		for _, iv := range ivs {
			if iv.End.IsZero() || !iv.End.Before(cutoff) {
				kept = append(kept, iv)
			}
		}
		clear(ivs[len(kept):])
		if len(kept) == 0 {
			delete(tl.addrs, a)
		} else {
			tl.addrs[a] = kept
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
