package networkpolicy

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func req(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
}

func TestProgressClearsOnlyWhatAReconcileSaw(t *testing.T) {
	p := newProgress()
	a := req("a")
	p.mark(a)
	token := p.begin()
	p.mark(a) // a change arrives while the reconcile runs
	p.finish(a, token, nil)
	if out, _, _ := p.State(a); !out {
		t.Fatal("a change marked during a reconcile was forgotten")
	}
	p.finish(a, p.begin(), nil)
	if out, _, _ := p.State(a); out {
		t.Fatal("server still outstanding after a reconcile that saw every change")
	}
	if len(p.servers) != 0 {
		t.Fatalf("finished servers are kept: %v", p.servers)
	}
}

func TestProgressReportsOnlyBlockingFailures(t *testing.T) {
	p := newProgress()
	a, b := req("a"), req("b")
	p.mark(a, b)
	p.finish(a, p.begin(), errors.New("connection refused"))
	p.finish(b, p.begin(), nameTakenError{key: client.ObjectKey{Namespace: "ns", Name: "access-to.b"}})
	for _, tt := range []struct {
		r       reconcile.Request
		blocked bool
	}{{a, false}, {b, true}} {
		out, _, blocked := p.State(tt.r)
		if !out || !p.failed(tt.r) || (blocked != "") != tt.blocked {
			t.Errorf("%s: outstanding %v failed %v blocked %q", tt.r.Name, out, p.failed(tt.r), blocked)
		}
	}
	taken := client.ObjectKey{Namespace: "ns", Name: "access-to.b"}
	if got := p.blockedOn(taken); len(got) != 1 || got[0] != b {
		t.Errorf("servers blocked on %s: %v, want [b]", taken, got)
	}
	if got := p.blockedOn(client.ObjectKey{Namespace: "ns", Name: "access-to.a"}); len(got) != 0 {
		t.Errorf("servers blocked on a policy that blocks none: %v", got)
	}
	p.finish(b, p.begin(), nil)
	if out, _, blocked := p.State(b); out || blocked != "" || p.failed(b) {
		t.Errorf("b still reported after it succeeded: outstanding %v blocked %q", out, blocked)
	}
	if got := p.blockedOn(taken); len(got) != 0 {
		t.Errorf("b still blocked on %s after it succeeded", taken)
	}
}

func TestProgressNotifiesSettledServers(t *testing.T) {
	p := newProgress()
	a, quiet := req("a"), req("quiet")
	p.mark(a)
	p.finish(quiet, p.begin(), nil) // never outstanding: nobody waits on it
	p.finish(a, p.begin(), nil)
	select {
	case ev := <-p.Settled:
		if ev.Object != a {
			t.Fatalf("notified %v, want %v", ev.Object, a)
		}
	default:
		t.Fatal("no notification for a settled server")
	}
	select {
	case ev := <-p.Settled:
		t.Fatalf("unexpected notification for %v", ev.Object)
	default:
	}
}

func TestProgressBacklogLeavesOutFailingAndStaleServers(t *testing.T) {
	p := newProgress()
	p.mark(req("a"), req("b"), req("c"))
	p.finish(req("b"), p.begin(), errors.New("connection refused"))
	if got := p.Backlog(time.Hour); got != 2 {
		t.Fatalf("backlog %d, want 2 (a and c; b is failing)", got)
	}
	if got := p.Backlog(0); got != 0 {
		t.Fatalf("backlog %d with everything stale, want 0", got)
	}
	p.finish(req("a"), p.begin(), nil)
	if got := p.Backlog(time.Hour); got != 1 {
		t.Fatalf("backlog %d, want 1 (c)", got)
	}
}
