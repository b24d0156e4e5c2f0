package informer

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// same reports whether two strings share their bytes.
func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Equal strings come back as one copy while they recur, and the interner holds at most
// two generations of them.
func TestInternerSharesRecurringStrings(t *testing.T) {
	in := newInterner(4)
	first := in.of(strings.Repeat("a", 3))
	if got := in.of(strings.Repeat("a", 3)); !same(got, first) || got != "aaa" {
		t.Errorf("a recurring string was not shared")
	}
	for i := range 20 {
		in.of(fmt.Sprint("other", i))
		// Recurring every other string, it survives the generations turning over.
		if got := in.of(strings.Repeat("a", 3)); !same(got, first) {
			t.Fatalf("after %d other strings the recurring one was copied again", i+1)
		}
	}
	if n := len(in.cur) + len(in.prev); n > 8 {
		t.Errorf("the interner holds %d strings, limit 4 per generation", n)
	}
	old := in.of("gone")
	for i := range 8 {
		in.of(fmt.Sprint("later", i))
	}
	if got := in.of(strings.Clone("gone")); same(got, old) {
		t.Error("a string unseen for two generations is still held")
	}
}

// The ClientIntents cache's transform keeps every value and shares the status strings
// two ClientIntents repeat.
func TestSlimIntentsSharesStatusStrings(t *testing.T) {
	slim := slimIntents()
	mk := func(name string) *v2beta1.ClientIntents {
		ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
		ci.Status = v2beta1.ClientIntentsStatus{
			Enforcement: strings.Clone("Enforced"),
			Targets:     []v2beta1.TargetStatus{{Target: strings.Clone("kubernetes api"), Point: strings.Clone("NetworkPolicy"), State: strings.Clone("Enforced"), Message: strings.Clone("NetworkPolicy ns/x admits this client")}},
			Conditions:  []metav1.Condition{{Type: strings.Clone("Ready"), Status: metav1.ConditionStatus(strings.Clone("True")), Reason: strings.Clone("Reconciled"), Message: strings.Clone("every enforcement point reflects this generation")}},
		}
		return ci
	}
	a, b := mk("a"), mk("b")
	want := b.Status.DeepCopy()
	if _, err := slim(a); err != nil {
		t.Fatal(err)
	}
	out, err := slim(b)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v2beta1.ClientIntents)
	if fmt.Sprint(got.Status) != fmt.Sprint(*want) || got.ManagedFields != nil {
		t.Fatalf("transform changed the object: %+v", got)
	}
	ta, tb := a.Status.Targets[0], got.Status.Targets[0]
	ca, cb := a.Status.Conditions[0], got.Status.Conditions[0]
	for name, pair := range map[string][2]string{
		"enforcement": {a.Status.Enforcement, got.Status.Enforcement}, "target message": {ta.Message, tb.Message},
		"point": {ta.Point, tb.Point}, "condition message": {ca.Message, cb.Message}, "reason": {ca.Reason, cb.Reason},
		"status": {string(ca.Status), string(cb.Status)},
	} {
		if !same(pair[0], pair[1]) {
			t.Errorf("%s not shared between two ClientIntents", name)
		}
	}
}
