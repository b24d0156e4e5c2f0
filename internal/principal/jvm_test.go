package principal

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
)

// jvmNames renders the encoded subjects with the JVM's X500Principal#getName, the
// rendering Apache Kafka's default SSL principal builder uses. Outside CI a missing JDK
// skips; under CI=true it fails.
func jvmNames(t *testing.T, rawSubjects [][]byte) []string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("java not found: the DN rendering is checked against the JVM (apt-get install openjdk-17-jdk-headless)")
		}
		t.Skip("java not installed")
	}
	var in bytes.Buffer
	for _, r := range rawSubjects {
		in.WriteString(hex.EncodeToString(r) + "\n")
	}
	cmd := exec.Command(java, "testdata/X500Name.java")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running the JVM oracle: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(rawSubjects) {
		t.Fatalf("the JVM rendered %d names for %d subjects:\n%s", len(lines), len(rawSubjects), out)
	}
	for i, l := range lines {
		lines[i] = unescapeJVM(t, l)
	}
	return lines
}

// unescapeJVM decodes the %XXXX UTF-16 escapes the oracle writes for non-ASCII output.
func unescapeJVM(t *testing.T, s string) string {
	t.Helper()
	var units []uint16
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			units = append(units, uint16(s[i]))
			continue
		}
		v, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
		if err != nil {
			t.Fatalf("oracle output %q: %v", s, err)
		}
		units = append(units, uint16(v))
		i += 4
	}
	return string(utf16.Decode(units))
}

// issuedSubject returns a certificate issued by ca for the name, whose raw subject is
// what the broker receives.
func issuedSubject(t *testing.T, ca *pki.CA, n pkix.Name) *x509.Certificate {
	t.Helper()
	leaf, err := ca.Issue(pki.Request{Subject: n, Usage: pki.ClientAuth, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatalf("issuing for %q: %v", n.CommonName, err)
	}
	return leaf.Cert
}

// testCA returns a throw-away CA for issuedSubject.
func testCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "test CA"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// The DN this package renders for a certificate equals what the JVM renders for the same
// encoded subject, for organizations and common names with every character RFC 2253
// escapes, spaces where they matter, and non-ASCII text; a table and random strings.
func TestDNMatchesTheJVM(t *testing.T) {
	ca := testCA(t)
	orgs := []string{
		"intentguard", "acme, inc", "a=b", "#first", "mid#dle", " lead", "trail ", "  two  ", "double  space",
		"a+b", `quo"te`, `back\slash`, "<angle>", "semi;colon", "Société Générale", "日本", "emoji 🙂",
		"ends with \\", "=", "#", " ", ",", "a\u00a0b", "tab\there", "cr\r", "\rlead", "nul\x00x", "bell\x07", "del\x7f", "#=+ ,;<>\"\\",
	}
	names := []pkix.Name{}
	for _, o := range orgs {
		names = append(names, Subject(identity.Identity{Namespace: "ns", Name: "client"}, o))
		names = append(names, pkix.Name{CommonName: o})
		names = append(names, pkix.Name{CommonName: o + "." + o, Organization: []string{o}})
	}
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	alphabet := []rune(` #=+,;<>"\abcXYZ09.-_é日🙂` + "\u00a0")
	for range 300 {
		var s [2]string
		for j := range s {
			rs := make([]rune, 1+rng.IntN(8))
			for k := range rs {
				rs[k] = alphabet[rng.IntN(len(alphabet))]
			}
			s[j] = string(rs)
		}
		names = append(names, pkix.Name{CommonName: s[0], Organization: []string{s[1]}})
	}
	var raws [][]byte
	var certs []*x509.Certificate
	for _, n := range names {
		c := issuedSubject(t, ca, n)
		certs = append(certs, c)
		raws = append(raws, c.RawSubject)
	}
	want := jvmNames(t, raws)
	failures := 0
	for i, c := range certs {
		got, err := DN(c.Subject)
		if err != nil {
			// Refusing is allowed only where the JVM's rendering is not plain text.
			if !strings.Contains(want[i], "=#") {
				t.Errorf("CN %q O %q: refused (%v), the JVM renders %q", names[i].CommonName, names[i].Organization, err, want[i])
			}
			continue
		}
		if got != want[i] {
			failures++
			if failures <= 20 {
				t.Errorf("CN %q O %q:\n got %q\nJVM %q", names[i].CommonName, names[i].Organization, got, want[i])
			}
		}
	}
	if failures > 20 {
		t.Errorf("... %d differences in all", failures)
	}
}
