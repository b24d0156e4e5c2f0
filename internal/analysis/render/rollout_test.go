package render

import (
	"testing"
	"time"
)

// TestEvidenceFormats checks how the roll-out report dates and counts observed calls.
func TestEvidenceFormats(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		before time.Duration
		want   string
	}{
		{0, "just now"}, {10 * time.Second, "10 s ago"}, {2*time.Minute + 59*time.Second, "2 min ago"},
		{47 * time.Hour, "47 h ago"}, {72 * time.Hour, "3 d ago"}, {-10 * time.Second, "in 10 s"},
	} {
		if got := Age(now, now.Add(-tc.before)); got != tc.want {
			t.Errorf("%v before: %q, want %q", tc.before, got, tc.want)
		}
	}
	for n, want := range map[uint64]string{0: "0", 999: "999", 1204: "1,204", 60480: "60,480", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
