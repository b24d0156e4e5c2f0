package suite

import (
	"context"
	"sync"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Manager is a controller manager that runs until its test ends or Stop.
type Manager struct {
	ctrl.Manager
	stop func()
}

// Stop stops the manager and waits for it to return; an error it returns fails the test.
// Calls after the first do nothing.
func (m *Manager) Stop() { m.stop() }

// RunManager builds a manager and starts it; it runs until the test ends or Stop. The
// context given to build ends when the manager is stopped. A build error fails the test.
func RunManager(t testing.TB, what string, build func(context.Context) (ctrl.Manager, error)) *Manager {
	t.Helper()
	return runManager(t, what, build, func() {})
}

// RunOperator is RunManager for an operator that must have the control plane to itself:
// operators started through one Env run one at a time, each waiting until the one before
// has stopped.
func (e *Env) RunOperator(t testing.TB, what string, build func(context.Context) (ctrl.Manager, error)) *Manager {
	t.Helper()
	e.operators.Lock()
	return runManager(t, what, build, e.operators.Unlock)
}

// Exclusive gives the test the control plane to itself, as RunOperator does, until it ends.
func (e *Env) Exclusive(t testing.TB) {
	e.operators.Lock()
	t.Cleanup(e.operators.Unlock)
}

func runManager(t testing.TB, what string, build func(context.Context) (ctrl.Manager, error), release func()) *Manager {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := build(ctx)
	if err != nil {
		cancel()
		release()
		t.Fatalf("building the %s: %v", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	m := &Manager{Manager: mgr, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", what, err)
			}
			release()
		})
	}}
	t.Cleanup(m.Stop)
	return m
}
