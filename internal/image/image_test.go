package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	cf, files := readBack(t, path, "ghcr.io/intentguard/intents-operator:test")
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/intents-operator"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(files)), []string{"intents-operator"}) {
		t.Errorf("layer files %v", slices.Sorted(maps.Keys(files)))
	}
	f := files["intents-operator"]
	if f.mode&0o111 == 0 {
		t.Errorf("binary mode %o is not executable", f.mode)
	}
	if !bytes.HasPrefix(f.data, []byte("\x7fELF")) {
		t.Errorf("the binary in the image is not an ELF file")
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

// layerFile is a file of an image's layer.
type layerFile struct {
	mode  int64
	xattr map[string]string
	data  []byte
}

// readBack reads an image tarball as a container runtime would: its configuration and the
// files of its only layer, with their extended attributes.
func readBack(t *testing.T, path, ref string) (*v1.ConfigFile, map[string]layerFile) {
	t.Helper()
	tag, _ := name.NewTag(ref)
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return cf, files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		f := layerFile{mode: h.Mode, data: data, xattr: map[string]string{}}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				f.xattr[k] = v
			}
		}
		files[h.Name] = f
	}
}
