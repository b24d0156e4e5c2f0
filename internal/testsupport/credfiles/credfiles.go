// Package credfiles writes certificate files for tests the way the credentials operator
// delivers them to a pod: cert.pem, key.pem and ca.pem in a directory (a mounted Secret).
package credfiles

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/pki"
)

// NewCA creates a throw-away CA valid for a day.
func NewCA(t testing.TB, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: name}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Write issues a certificate from ca for cn (with the DNS names and addresses in hosts)
// and writes cert.pem, key.pem and ca.pem into dir. Each file is replaced whole, through
// a rename, with a later modification time than the one it replaces, as a Secret
// volume's update does.
func Write(t testing.TB, dir string, ca *pki.CA, cn string, usage pki.Usage, hosts ...string) {
	t.Helper()
	dns, ips := pki.SplitHosts(hosts)
	leaf, err := ca.Issue(pki.Request{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips, Usage: usage, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.EncodeKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"cert.pem": pki.EncodeCerts(leaf.Cert), "key.pem": key, "ca.pem": pki.EncodeCerts(ca.Cert)} {
		path := filepath.Join(dir, name)
		later := time.Now()
		if fi, err := os.Stat(path); err == nil && !fi.ModTime().Before(later) {
			later = fi.ModTime().Add(time.Second)
		}
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, later, later); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}
