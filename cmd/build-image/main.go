// Command build-image builds one of the project's images as a tarball, without a
// container engine, from binaries built beforehand (CGO_ENABLED=0 GOOS=linux) into
// -bin-dir: go run ./cmd/build-image -image mapper -out bin/mapper.tar
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/intentguard/intentguard/internal/image"
)

func main() {
	name := flag.String("image", "intents-operator", "image to build: "+strings.Join(slices.Sorted(maps.Keys(image.Images)), ", "))
	binDir := flag.String("bin-dir", "bin", "directory holding the image's statically linked binaries, each named as in the image")
	out := flag.String("out", "", "tarball to write (default bin/<image>.tar)")
	ref := flag.String("tag", "", "image reference recorded in the tarball (default ghcr.io/intentguard/<image>:dev)")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH the binaries were built for")
	flag.Parse()
	if err := build(*name, *binDir, *out, *ref, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func build(name, binDir, out, ref, arch string) error {
	spec, ok := image.Images[name]
	if !ok {
		return fmt.Errorf("no image named %q", name)
	}
	if out == "" {
		out = filepath.Join("bin", name+".tar")
	}
	if ref == "" {
		ref = "ghcr.io/intentguard/" + name + ":dev"
	}
	spec.Arch = arch
	spec.Binary = filepath.Join(binDir, filepath.Base(spec.Path))
	spec.More = slices.Clone(spec.More)
	for i := range spec.More {
		spec.More[i].Binary = filepath.Join(binDir, filepath.Base(spec.More[i].Path))
	}
	img, err := image.Build(spec)
	if err != nil {
		return fmt.Errorf("building %s: %w", name, err)
	}
	if err := image.WriteTarball(img, ref, out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing the digest of %s: %w", name, err)
	}
	fmt.Printf("%s %s\n", out, digest)
	return nil
}
