package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestOperatorImage builds the operator binary and its image tarball, reads the tarball
// back as a container runtime would, and checks what the runtime will run: as 65532, the
// binary as entrypoint, for linux, with the binary executable in the only layer.
func TestOperatorImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "intents-operator")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/intents-operator")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, out)
	}
	img, err := Build(Spec{Binary: bin, Path: "/intents-operator", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "image.tar")
	if err := WriteTarball(img, "ghcr.io/intentguard/intents-operator:test", path); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/intentguard/intents-operator:test")
	loaded, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back: %v", err)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/intents-operator"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	layers, err := loaded.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Name == "intents-operator" {
			if h.Mode&0o111 == 0 {
				t.Errorf("binary mode %o is not executable", h.Mode)
			}
			head := make([]byte, 4)
			if _, err := io.ReadFull(tr, head); err != nil || string(head) != "\x7fELF" {
				t.Errorf("the binary in the image is not an ELF file (%q, %v)", head, err)
			}
		}
	}
	if !slices.Equal(files, []string{"intents-operator"}) {
		t.Errorf("layer files %v", files)
	}

	// The same binary gives the same image.
	again, err := Build(Spec{Binary: bin, Path: "/intents-operator", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of one binary differ: %s, %s", d1, d2)
	}
}
