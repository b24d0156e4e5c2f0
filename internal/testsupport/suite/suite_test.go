package suite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// failures stands in for a test whose failures are the subject: Fatalf records the
// message and ends the goroutine, as testing.T does.
type failures struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *failures) Helper() {}

func (f *failures) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *failures) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// run calls fn as a test body would, and returns once it has returned or failed.
func (f *failures) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	f := &failures{TB: t}
	calls := 0
	f.run(func() {
		WaitFor(f, "the third call", time.Minute, func() (bool, error) {
			calls++
			if calls < 3 {
				return false, errors.New("not yet")
			}
			return true, nil
		})
	})
	if msg := f.message(); msg != "" || calls != 3 {
		t.Fatalf("after %d calls: %q", calls, msg)
	}
}

func TestWaitForFailsWithTheLastError(t *testing.T) {
	f := &failures{TB: t}
	calls := 0
	start := time.Now()
	f.run(func() {
		WaitFor(f, "nothing", 300*time.Millisecond, func() (bool, error) {
			calls++
			if calls == 1 {
				return false, fmt.Errorf("attempt %d", calls)
			}
			// A later "not yet" without an error keeps the last error to report.
			return false, nil
		})
	})
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("gave up after %s", took)
	}
	if msg := f.message(); !strings.Contains(msg, "waiting for nothing") || !strings.Contains(msg, "attempt 1") {
		t.Fatalf("failure %q does not name what was awaited and the last error", msg)
	}
}

// idle is a manager that runs until its context ends.
type idle struct {
	ctrl.Manager
}

func (idle) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func build(context.Context) (ctrl.Manager, error) { return idle{}, nil }

func TestOperatorsRunOneAtATime(t *testing.T) {
	env := &Env{}
	first := env.RunOperator(t, "first", build)
	second := make(chan *Manager, 1)
	go func() { second <- env.RunOperator(t, "second", build) }()
	select {
	case <-second:
		t.Fatal("the second operator started while the first ran")
	case <-time.After(200 * time.Millisecond):
	}
	first.Stop()
	select {
	case m := <-second:
		m.Stop()
	case <-time.After(10 * time.Second):
		t.Fatal("the second operator did not start once the first stopped")
	}
	first.Stop() // a second Stop does nothing
}

func TestOperatorThatFailsToBuildLetsTheNextRun(t *testing.T) {
	env := &Env{}
	f := &failures{TB: t}
	f.run(func() {
		env.RunOperator(f, "broken operator", func(context.Context) (ctrl.Manager, error) {
			return nil, errors.New("no such flag")
		})
	})
	if msg := f.message(); !strings.Contains(msg, "building the broken operator: no such flag") {
		t.Fatalf("failure %q", msg)
	}
	next := make(chan *Manager, 1)
	go func() { next <- env.RunOperator(t, "next", build) }()
	select {
	case m := <-next:
		m.Stop()
	case <-time.After(10 * time.Second):
		t.Fatal("a failed build still holds the control plane")
	}
}
