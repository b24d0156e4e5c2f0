// Package image builds the project's OCI images without a container engine: one layer
// holding static binaries on an empty base, run as the non-root user 65532 with one
// binary as entrypoint, which is what the Dockerfile's distroless/static:nonroot image
// amounts to for binaries that need no files from their base. CI builds it this way
// because neither a Docker engine nor the distroless base is reachable there.
package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user the image runs as, the distroless "nonroot" user.
const NonRoot = "65532:65532"

// Spec describes one image.
type Spec struct {
	// Binary is the path of the statically linked binary to ship.
	Binary string
	// Path is where the binary goes in the image, and the entrypoint.
	Path string
	// Arch is the GOARCH the binary was built for.
	Arch string
	// More are further binaries of the image, run by naming them as the container's command.
	More []File
}

// File is a binary shipped beside the entrypoint.
type File struct {
	// Binary is the path of the statically linked binary to ship.
	Binary string
	// Path is where the binary goes in the image.
	Path string
	// Capabilities are file capabilities, permitted and effective when the binary runs.
	// A non-root process gets them only where the container's capability set (its
	// bounding and, with no_new_privs, permitted set) holds them too.
	Capabilities []Capability
}

// Capability is a Linux capability's number.
type Capability uint

// The capabilities the project's binaries carry.
const (
	// CapNetRaw opens packet sockets.
	CapNetRaw Capability = 13
	// CapSysPtrace inspects other users' processes, their namespaces included.
	CapSysPtrace Capability = 19
)

// Images are the images the chart runs, by name, with the paths of their binaries in
// the image (each built as a binary of the same base name): the intents operator's, the
// credentials operator's and the network mapper's, whose one image holds the aggregator
// (its entrypoint) and the agent, which the chart runs by naming it as the command.
var Images = map[string]Spec{
	"intents-operator":     {Path: "/intents-operator"},
	"credentials-operator": {Path: "/credentials-operator"},
	"mapper": {Path: "/mapper-aggregator", More: []File{
		{Path: "/mapper-agent", Capabilities: []Capability{CapNetRaw, CapSysPtrace}},
	}},
}

// capabilityXattr is the security.capability extended attribute (struct vfs_cap_data,
// revision 2) granting caps permitted and effective, and no inheritable ones.
func capabilityXattr(caps []Capability) string {
	const revision2, effective = 0x02000000, 0x000001
	var permitted uint64
	for _, c := range caps {
		permitted |= 1 << c
	}
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	binary.LittleEndian.PutUint32(b[4:], uint32(permitted))
	binary.LittleEndian.PutUint32(b[12:], uint32(permitted>>32))
	return string(b)
}

// CapabilityXattrKey is the tar PAX record holding a file's capabilities, which container
// runtimes set as the file's security.capability attribute when they unpack the layer.
const CapabilityXattrKey = "SCHILY.xattr.security.capability"

// Build returns the image of spec. Timestamps are fixed so the same binary always gives
// the same image digest.
func Build(spec Spec) (v1.Image, error) {
	epoch := time.Unix(0, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range append([]File{{Binary: spec.Binary, Path: spec.Path}}, spec.More...) {
		if err := addFile(tw, f); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "intentguard internal/image", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", spec.Arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = NonRoot
	cf.Config.Entrypoint = []string{spec.Path}
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cf)
}

// addFile writes a binary into the layer, with its capabilities if it has any.
func addFile(tw *tar.Writer, f File) error {
	bin, err := os.ReadFile(f.Binary)
	if err != nil {
		return fmt.Errorf("reading the binary: %w", err)
	}
	h := &tar.Header{Name: f.Path[1:], Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Uid: 0, Gid: 0}
	if len(f.Capabilities) > 0 {
		h.Format = tar.FormatPAX
		h.PAXRecords = map[string]string{CapabilityXattrKey: capabilityXattr(f.Capabilities)}
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %s to the layer: %w", f.Path, err)
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("writing %s to the layer: %w", f.Path, err)
	}
	return nil
}

// WriteTarball writes img as a tarball that `docker load`, `podman load` and
// `crane push` read, tagged ref.
func WriteTarball(img v1.Image, ref, path string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
