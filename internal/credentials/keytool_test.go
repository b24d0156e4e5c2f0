package credentials

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/internal/credentials/backend"
)

// Java's own keytool opens the keystores this operator writes, with the password, and
// sees the key entry and the trusted CA: the Java clients these formats are for can read
// them. Skipped where no JDK is installed.
func TestJavaKeytoolReadsKeystores(t *testing.T) {
	keytool, err := exec.LookPath("keytool")
	if err != nil {
		t.Skip("keytool (a JDK) is not installed")
	}
	key, _ := backend.NewKey()
	caKey, _ := backend.NewKey()
	root := selfSignedCA(t, caKey)
	cred := &backend.Credential{Key: key, Chain: []*x509Certificate{signedLeaf(t, root, caKey, key)}, Roots: []*x509Certificate{root}}
	dir := t.TempDir()
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
