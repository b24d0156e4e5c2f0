package burst

import (
	"testing"
	"time"
)

// A reconciler that has not begun counts as moving for StartingWithin from when it is
// first asked, and from its first reconcile on by what it does.
func TestActivityBeforeTheFirstReconcile(t *testing.T) {
	var a Activity
	if !a.Moving() {
		t.Fatal("a reconciler that has not begun yet is not moving")
	}
	a.asked = time.Now().Add(-StartingWithin)
	if a.Moving() {
		t.Fatalf("a reconciler that has not begun %v after it was first asked is still moving", StartingWithin)
	}
	a.asked = time.Now()
	a.Within = time.Millisecond
	a.Begin()
	a.End()
	time.Sleep(5 * time.Millisecond)
	if a.Moving() {
		t.Fatal("a reconciler idle since its first reconcile is moving")
	}
	a.Begin()
	if !a.Moving() {
		t.Fatal("a reconciler with a reconcile running is not moving")
	}
}
