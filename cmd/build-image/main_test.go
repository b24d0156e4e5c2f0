package main

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
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/intentguard/intentguard/internal/image"
)

// layerFile is a file of an image's layer.
type layerFile struct {
	mode  int64
	xattr map[string]string
	data  []byte
}

// TestMapperImage builds the mapper's binaries and image as `make image` does and checks
// what a runtime unpacks: both binaries, the aggregator as entrypoint, run as 65532, and
// the agent alone carrying NET_RAW and SYS_PTRACE as file capabilities. Unpacked with
// that attribute, the agent then starts as user 65534 in a process whose capabilities
// are only the bounding set the chart's securityContext gives and no_new_privs is set,
// as in the chart's pod (allowPrivilegeEscalation: false); without the attribute it
// cannot open its capture.
func TestMapperImage(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("running the unpacked agent as another user needs root under CI=true")
		}
		t.Skip("needs root to run the unpacked agent as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is required")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gobuild := exec.Command("go", "build", "-o", dir+"/", "../mapper-agent", "../mapper-aggregator")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("building the mapper: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "mapper.tar")
	if err := build("mapper", dir, out, "", runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/intentguard/mapper:dev")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != image.NonRoot || !slices.Equal(cf.Config.Entrypoint, []string{"/mapper-aggregator"}) {
		t.Errorf("user %q, entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
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
			break
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
	agent, aggregator := files["mapper-agent"], files["mapper-aggregator"]
	if len(files) != 2 || agent.data == nil || aggregator.data == nil {
		t.Fatalf("layer files %v, want mapper-agent and mapper-aggregator", slices.Sorted(maps.Keys(files)))
	}
	// vfs_cap_data revision 2, effective, permitted NET_RAW (13) and SYS_PTRACE (19).
	wantCaps := "\x01\x00\x00\x02" + "\x00\x20\x08\x00" + strings.Repeat("\x00", 12)
	if got := agent.xattr[image.CapabilityXattrKey]; got != wantCaps {
		t.Errorf("the agent's file capabilities %x, want %x", got, wantCaps)
	}
	if len(aggregator.xattr) != 0 {
		t.Errorf("the aggregator carries %v; it needs no capability", aggregator.xattr)
	}

	// Unpack the agent as a runtime does, and without its capabilities.
	withCaps, without := filepath.Join(dir, "unpacked-agent"), filepath.Join(dir, "agent-without-caps")
	for _, p := range []string{withCaps, without} {
		if err := os.WriteFile(p, agent.data, os.FileMode(agent.mode)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(withCaps, "security.capability", []byte(wantCaps), 0); err != nil {
		t.Fatalf("setting the layer's file capabilities: %v", err)
	}
	run := func(bin string) (string, bool) {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all,+net_raw,+sys_ptrace", "--no-new-privs",
			bin, "--node=image-test", "--aggregator-url=http://127.0.0.1:1", "--scan-interval=1h")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
			return buf.String(), false
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Signal(os.Interrupt)
			<-done
			return buf.String(), true
		}
	}
	if out, running := run(withCaps); !running || !strings.Contains(out, "mapper agent started") {
		t.Errorf("the unpacked agent did not start capturing (running %v):\n%s", running, out)
	}
	if out, running := run(without); running || !strings.Contains(out, "operation not permitted") {
		t.Errorf("without its file capabilities the agent ran (running %v); the attribute proves nothing:\n%s", running, out)
	}
}
