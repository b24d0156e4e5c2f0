package identity

import "testing"

func TestKindRules(t *testing.T) {
	for _, c := range []struct {
		a, b           string
		matches, agree bool
	}{
		{"", "", true, true},
		{"", "Deployment", true, true},
		{"Deployment", "", false, true},
		{"Deployment", "Deployment", true, true},
		{"Deployment", "StatefulSet", false, false},
		{"deployment", "Deployment", false, false},
	} {
		if got := KindMatches(c.a, c.b); got != c.matches {
			t.Errorf("KindMatches(%q, %q) = %v, want %v", c.a, c.b, got, c.matches)
		}
		if got := KindsAgree(c.a, c.b); got != c.agree {
			t.Errorf("KindsAgree(%q, %q) = %v, want %v", c.a, c.b, got, c.agree)
		}
		if KindsAgree(c.a, c.b) != KindsAgree(c.b, c.a) {
			t.Errorf("KindsAgree(%q, %q) is not symmetric", c.a, c.b)
		}
	}
}
