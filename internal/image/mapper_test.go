package image

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
	gobuild := exec.Command("go", "build", "-o", dir+"/", "../../cmd/mapper-agent", "../../cmd/mapper-aggregator")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("building the mapper: %v\n%s", err, out)
	}
	spec := Images["mapper"]
	spec.Binary, spec.Arch = filepath.Join(dir, "mapper-aggregator"), runtime.GOARCH
	spec.More = []File{spec.More[0]}
	spec.More[0].Binary = filepath.Join(dir, "mapper-agent")
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mapper.tar")
	if err := WriteTarball(img, "ghcr.io/intentguard/mapper:test", out); err != nil {
		t.Fatal(err)
	}
	cf, files := readBack(t, out, "ghcr.io/intentguard/mapper:test")
	if cf.Config.User != NonRoot || !slices.Equal(cf.Config.Entrypoint, []string{"/mapper-aggregator"}) {
		t.Errorf("user %q, entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	agent, aggregator := files["mapper-agent"], files["mapper-aggregator"]
	if len(files) != 2 || agent.data == nil || aggregator.data == nil {
		t.Fatalf("layer files %v, want mapper-agent and mapper-aggregator", slices.Sorted(maps.Keys(files)))
	}
	// vfs_cap_data revision 2, effective, permitted NET_RAW (13) and SYS_PTRACE (19).
	wantCaps := "\x01\x00\x00\x02" + "\x00\x20\x08\x00" + strings.Repeat("\x00", 12)
	if got := agent.xattr[CapabilityXattrKey]; got != wantCaps {
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
