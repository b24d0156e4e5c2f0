package pki

import (
	"crypto/x509"
	"math/rand/v2"
	"testing"
	"time"
)

func validity(notBefore time.Time, life time.Duration) *x509.Certificate {
	return &x509.Certificate{NotBefore: notBefore, NotAfter: notBefore.Add(life)}
}

// The decision at and around its boundary, for the fractions in use.
func TestRenewalDueAtBoundaries(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		rule Renewal
		life time.Duration
		at   time.Duration // since NotBefore
		due  bool
	}{
		{"webhook: at issue", Renewal{Fraction: 2.0 / 3}, 3 * time.Hour, 0, false},
		{"webhook: a nanosecond before two thirds", Renewal{Fraction: 2.0 / 3}, 3 * time.Hour, 2*time.Hour - 1, false},
		{"webhook: at two thirds", Renewal{Fraction: 2.0 / 3}, 3 * time.Hour, 2 * time.Hour, true},
		{"webhook: a nanosecond after two thirds", Renewal{Fraction: 2.0 / 3}, 3 * time.Hour, 2*time.Hour + 1, true},
		{"webhook: expired", Renewal{Fraction: 2.0 / 3}, 3 * time.Hour, 4 * time.Hour, true},
		{"CA publish: before a third", Renewal{Fraction: 1.0 / 3}, 9 * time.Second, 3*time.Second - 1, false},
		{"CA publish: at a third", Renewal{Fraction: 1.0 / 3}, 9 * time.Second, 3 * time.Second, true},
		{"half: just before", Renewal{Fraction: 0.5}, 2 * time.Minute, time.Minute - time.Millisecond, false},
		{"half: at", Renewal{Fraction: 0.5}, 2 * time.Minute, time.Minute, true},
		{"before NotBefore", Renewal{Fraction: 0.5}, 2 * time.Minute, -time.Hour, false},
	}
	for _, c := range cases {
		if got := c.rule.Due(validity(start, c.life), start.Add(c.at)); got != c.due {
			t.Errorf("%s: due %v, want %v", c.name, got, c.due)
		}
	}
}

// Property: without jitter, the rule is the webhook's "less than a third of the
// lifetime left" and is monotonic in time; with jitter, the renewal time falls within
// [fraction - jitter, fraction] of the validity period and is spread over it.
func TestRenewalProperties(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 1000 {
		life := time.Second + time.Duration(rng.Int64N(int64(20*365*24*time.Hour)))
		c := validity(start.Add(time.Duration(rng.Int64N(int64(time.Hour)))), life)
		third := Renewal{Fraction: 2.0 / 3}
		now := c.NotBefore.Add(time.Duration(rng.Int64N(int64(life) + 1)))
		// A nanosecond of float rounding either way is allowed at the exact point.
		if left := c.NotAfter.Sub(now); left < life/3-1 || left > life/3+1 {
			if got, want := third.Due(c, now), left < life/3; got != want {
				t.Fatalf("life %s, %s left: due %v, want %v", life, left, got, want)
			}
		}
		if third.Due(c, now) && !third.Due(c, now.Add(time.Duration(rng.Int64N(int64(life))))) {
			t.Fatalf("life %s: due at %s but not later", life, now)
		}
		f := 0.1 + 0.8*rng.Float64()
		j := f * rng.Float64()
		r := Renewal{Fraction: f, Jitter: j}
		lo := c.NotBefore.Add(time.Duration(float64(life) * (f - j)))
		hi := c.NotBefore.Add(time.Duration(float64(life) * f))
		if at := r.At(c); at.Before(lo.Add(-1)) || at.After(hi) {
			t.Fatalf("life %s, fraction %v, jitter %v: renewal at %s, outside [%s, %s]", life, f, j, at, lo, hi)
		}
	}
	c := validity(start, 30*24*time.Hour)
	r := Renewal{Fraction: 2.0 / 3, Jitter: 0.05}
	seen := map[time.Time]bool{}
	for range 200 {
		seen[r.At(c)] = true
	}
	if len(seen) < 150 {
		t.Errorf("only %d distinct renewal times in 200: no jitter", len(seen))
	}
	if a, b := (Renewal{Fraction: 2.0 / 3}).At(c), (Renewal{Fraction: 2.0 / 3}).At(c); !a.Equal(b) {
		t.Errorf("without jitter the renewal time moves: %s, %s", a, b)
	}
}

func TestRenewalValidate(t *testing.T) {
	for _, c := range []struct {
		rule Renewal
		ok   bool
	}{
		{Renewal{Fraction: 2.0 / 3, Jitter: 0.05}, true},
		{Renewal{Fraction: 0.5}, true},
		{Renewal{Fraction: 0}, false},
		{Renewal{Fraction: 1}, false},
		{Renewal{Fraction: -0.5}, false},
		{Renewal{Fraction: 0.5, Jitter: 0.5}, false},
		{Renewal{Fraction: 0.5, Jitter: -0.1}, false},
	} {
		if err := c.rule.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: error %v, want valid %v", c.rule, err, c.ok)
		}
	}
}
