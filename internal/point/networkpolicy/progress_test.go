package networkpolicy

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func req(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
}

// outstanding reports whether the server has changes not carried out yet.
func (p *progress) outstanding(r reconcile.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[r]
	return s != nil && s.marked != 0
}

func TestProgressClearsOnlyWhatAReconcileSaw(t *testing.T) {
	p := newProgress()
	a := req("a")
	p.mark(a)
	token := p.begin()
	p.mark(a) // a change arrives while the reconcile runs
	p.finish(a, token, nil)
	if !p.outstanding(a) {
		t.Fatal("a change marked during a reconcile was forgotten")
	}
	p.finish(a, p.begin(), nil)
	if p.outstanding(a) {
		t.Fatal("server still outstanding after a reconcile that saw every change")
	}
	if len(p.servers) != 0 {
		t.Fatalf("finished servers are kept: %v", p.servers)
	}
}

func TestProgressKeepsFailedServersOutstanding(t *testing.T) {
	p := newProgress()
	a, b := req("a"), req("b")
	p.mark(a)
	p.finish(a, p.begin(), errors.New("connection refused"))
	p.finish(b, p.begin(), errors.New("connection refused")) // failed without a change seen
	for _, r := range []reconcile.Request{a, b} {
		if !p.outstanding(r) || !p.failed(r) {
			t.Errorf("%s: outstanding %v failed %v after a failed attempt", r.Name, p.outstanding(r), p.failed(r))
		}
	}
	p.finish(a, p.begin(), nil)
	if p.outstanding(a) || p.failed(a) {
		t.Errorf("a still reported after it succeeded")
	}
}

// A server status asks about before its change reached the reconciler is in hand from
// that moment, and stays so until a reconcile that began after it ends.
func TestProgressInHandSinceStartsTheWaitOnce(t *testing.T) {
	p := newProgress()
	a := req("a")
	token := p.begin()
	first := p.inHandSince(a)
	if !p.outstanding(a) {
		t.Fatal("a server asked about is not in hand")
	}
	time.Sleep(time.Millisecond)
	if again := p.inHandSince(a); !again.Equal(first) {
		t.Fatalf("the wait restarted: %v, then %v", first, again)
	}
	p.finish(a, token, nil) // a reconcile that began before the question
	if !p.outstanding(a) {
		t.Fatal("a reconcile that began before the question cleared it")
	}
	p.finish(a, p.begin(), nil)
	if p.outstanding(a) {
		t.Fatal("still in hand after a reconcile that began after the question")
	}
}

// A failed attempt's wait counts from the first failure, however long the change waited
// its turn before; a success ends it.
func TestProgressFailuresCountFromTheFirst(t *testing.T) {
	p := newProgress()
	a := req("a")
	p.mark(a)
	p.servers[a].since = time.Now().Add(-time.Minute)
	if since := p.failingSince(a); time.Since(since) > time.Second {
		t.Fatalf("first failure counts from %v, want now", since)
	}
	p.finish(a, p.begin(), errors.New("the object has been modified"))
	first := p.failingSince(a)
	time.Sleep(10 * time.Millisecond)
	p.finish(a, p.begin(), errors.New("the object has been modified"))
	if got := p.failingSince(a); !got.Equal(first) {
		t.Fatalf("failing since %v after a second failure, want %v", got, first)
	}
	p.mark(a)
	p.finish(a, p.begin(), nil)
	p.mark(a)
	if since := p.failingSince(a); time.Since(since) > time.Second || since.Equal(first) {
		t.Fatalf("after a success the failures count from %v, want now", since)
	}
}
