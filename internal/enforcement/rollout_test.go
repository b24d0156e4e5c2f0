package enforcement

import "testing"

func TestEnforces(t *testing.T) {
	cases := []struct {
		opts      Options
		ns        string
		protected bool
		want      bool
	}{
		{Options{}, "a", false, true},
		{Options{Shadow: true}, "a", false, false},
		{Options{Shadow: true}, "a", true, true},
		{Options{Shadow: true, EnforcedNamespaces: []string{"a"}}, "a", false, true},
		{Options{Shadow: true, EnforcedNamespaces: []string{"a"}}, "b", false, false},
	}
	for _, c := range cases {
		if got := c.opts.Enforces(c.ns, c.protected); got != c.want {
			t.Errorf("%+v.Enforces(%q, %v) = %v, want %v", c.opts, c.ns, c.protected, got, c.want)
		}
	}
}
