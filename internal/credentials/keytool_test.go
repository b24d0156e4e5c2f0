package credentials

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/internal/pki"
)

// keytoolBinary finds the JDK's keytool: $KEYTOOL (make test sets it from
// hack/keytool.sh), on PATH or under /usr/lib/jvm. Without a JDK the Java tests are
// skipped, except in CI (CI=true), where that is a failure.
func keytoolBinary(t *testing.T) string {
	t.Helper()
	if k := os.Getenv("KEYTOOL"); k != "" {
		return k
	}
	if p, err := exec.LookPath("keytool"); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/jvm/*/bin/keytool"); len(m) > 0 {
		return m[0]
	}
	if os.Getenv("CI") != "" {
		t.Fatal("keytool not found on PATH or under /usr/lib/jvm; install a JDK (apt-get install openjdk-17-jdk-headless)")
	}
	t.Skip("keytool (a JDK) is not installed")
	return ""
}

// Java's own keytool opens the keystores this operator writes, with the password, and
// sees the key entry and the trusted CA: the Java clients these formats are for can read
// them. The JVM reads the workload certificate's subject as CN=<name>.<namespace>,
// O=intentguard, the order a broker's principal is written in.
func TestJavaKeytoolReadsKeystores(t *testing.T) {
	keytool := keytoolBinary(t)
	cred := testCredential(t)
	dir := t.TempDir()
	leafPath := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(leafPath, pki.EncodeCerts(cred.Leaf()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keytool, "-printcert", "-file", leafPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Owner: CN=checkout.shop, O=intentguard\n") {
		t.Errorf("keytool -printcert: %v\n%s\nwant the owner CN=checkout.shop, O=intentguard", err, out)
	}
	for _, c := range []struct{ format, storetype string }{{FormatJKS, "JKS"}, {FormatPKCS12, "PKCS12"}} {
		spec, err := ParseSpec(map[string]string{Prefix + AnnSecretName: "s", Prefix + AnnCertType: c.format})
		if err != nil {
			t.Fatal(err)
		}
		data, err := Render(spec, cred, []byte("changeit-123"))
		if err != nil {
			t.Fatal(err)
		}
		for file, want := range map[string]string{spec.KeystoreFile: "PrivateKeyEntry", spec.TruststoreFile: "trustedCertEntry"} {
			path := filepath.Join(dir, c.format+"-"+file)
			if err := os.WriteFile(path, data[file], 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(keytool, "-list", "-keystore", path, "-storetype", c.storetype, "-storepass", "changeit-123").CombinedOutput()
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("keytool -list %s (%s): %v\n%s", file, c.storetype, err, out)
			}
			if out, err := exec.Command(keytool, "-list", "-keystore", path, "-storetype", c.storetype, "-storepass", "wrong-pass").CombinedOutput(); err == nil {
				t.Errorf("keytool opened %s with a wrong password:\n%s", file, out)
			}
		}
	}
}
