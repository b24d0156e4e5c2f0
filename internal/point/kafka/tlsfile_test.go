package kafka

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A TLS file a KafkaServerConfig names is read only below an allowed directory, with
// symbolic links and .. resolved first: neither a link planted in the directory nor a
// path climbing out of it reaches another file of the operator's.
func TestTLSFileStaysInTheAllowedDirectories(t *testing.T) {
	allowed, outside := t.TempDir(), t.TempDir()
	write := func(path, content string) string {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inFile := write(filepath.Join(allowed, "cert.pem"), "in")
	secret := write(filepath.Join(outside, "token"), "secret")
	if err := os.MkdirAll(filepath.Join(allowed, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Secret volumes link each key through ..data; such a link stays inside.
	inner := write(filepath.Join(allowed, "..data", "key.pem"), "key")
	if err := os.Symlink(inner, filepath.Join(allowed, "key.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(allowed, "escape.pem")); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Options: Options{TLSDirs: []string{allowed}}}
	for path, want := range map[string]string{inFile: "in", filepath.Join(allowed, "key.pem"): "key"} {
		if got, err := r.tlsFile(path); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{
		secret,
		filepath.Join(allowed, "escape.pem"),
		allowed + "/../" + filepath.Base(outside) + "/token",
		allowed,
		"cert.pem",
		allowed + "-sibling/cert.pem",
	} {
		if got, err := r.tlsFile(path); err == nil {
			t.Errorf("%s was read: %q", path, got)
		}
	}
	none := &Reconciler{}
	if _, err := none.tlsFile(inFile); err == nil || !strings.Contains(err.Error(), "--kafka-tls-dirs") {
		t.Errorf("without allowed directories: %v", err)
	}
}
