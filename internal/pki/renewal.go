package pki

import (
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"time"
)

// Renewal is the one renewal rule of the package doc: a certificate is due once Fraction
// of its validity period has passed, less a random part of at most Jitter of it.
type Renewal struct {
	// Fraction of the validity period after which a certificate is renewed, in (0, 1).
	Fraction float64
	// Jitter is the largest fraction of the validity period taken off the renewal time
	// at random, so that certificates issued together are not all renewed in the same
	// second; in [0, Fraction).
	Jitter float64
}

// Validate reports a Fraction outside (0, 1) or a Jitter outside [0, Fraction).
func (r Renewal) Validate() error {
	if !(r.Fraction > 0 && r.Fraction < 1) {
		return fmt.Errorf("renew fraction %v is not between 0 and 1", r.Fraction)
	}
	if !(r.Jitter >= 0 && r.Jitter < r.Fraction) {
		return fmt.Errorf("jitter %v is not between 0 and the renew fraction", r.Jitter)
	}
	return nil
}

// At returns when c is to be renewed. With Jitter, every call draws anew: a caller that
// must keep one answer records it (the credentials operator's renew-at annotation).
func (r Renewal) At(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	at := time.Duration(float64(life) * r.Fraction)
	if spread := int64(float64(life) * r.Jitter); spread > 0 {
		at -= time.Duration(rand.Int64N(spread))
	}
	return c.NotBefore.Add(at)
}

// Due reports whether c is to be renewed at now.
func (r Renewal) Due(c *x509.Certificate, now time.Time) bool {
	return !now.Before(r.At(c))
}
