package status

import (
	"context"
	"testing"
	"time"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
)

// Status waits while a point still carries out a change taken in hand less than
// enforcement.PendingAfter ago, and not for anything else.
func TestSettlingWaitsOnlyForRecentChangesInHand(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name   string
		states []enforcement.TargetState
		wait   bool
	}{
		{"nothing", nil, false},
		{"settled", []enforcement.TargetState{{State: enforcement.Enforced}, {State: enforcement.Waiting}}, false},
		{"in hand now", []enforcement.TargetState{{State: enforcement.Enforced}, {State: enforcement.Waiting, InHand: true, Since: now}}, true},
		{"in hand too long", []enforcement.TargetState{{State: enforcement.Waiting, InHand: true, Since: now.Add(-enforcement.PendingAfter)}}, false},
		{"one of two too long", []enforcement.TargetState{
			{State: enforcement.Waiting, InHand: true, Since: now.Add(-enforcement.PendingAfter)},
			{State: enforcement.Waiting, InHand: true, Since: now},
		}, true},
	} {
		wait := settling(tt.states)
		if (wait > 0) != tt.wait || wait > pendingRecheck {
			t.Errorf("%s: wait %v, want waiting %v (at most %v)", tt.name, wait, tt.wait, pendingRecheck)
		}
	}
}

// Each status reconciler keeps the notices about its own kind.
func TestNoticesOfKeepsOneKind(t *testing.T) {
	ci := &v2beta1.ClientIntents{}
	ci.Namespace, ci.Name = "ns", "client"
	ps := &v2beta1.ProtectedService{}
	ps.Namespace, ps.Name = "ns", "guard"
	if got := noticesOf[*v2beta1.ClientIntents](context.Background(), ci); len(got) != 1 || got[0].Name != "client" {
		t.Errorf("ClientIntents notice gave %v", got)
	}
	if got := noticesOf[*v2beta1.ClientIntents](context.Background(), ps); len(got) != 0 {
		t.Errorf("a ProtectedService notice reached the ClientIntents status: %v", got)
	}
	if got := noticesOf[*v2beta1.ProtectedService](context.Background(), ps); len(got) != 1 || got[0].Name != "guard" {
		t.Errorf("ProtectedService notice gave %v", got)
	}
}
