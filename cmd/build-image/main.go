// Command build-image builds the intents operator's image as a tarball, without a
// container engine: go run ./cmd/build-image -binary bin/intents-operator -out bin/intents-operator.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/intentguard/intentguard/internal/image"
)

func main() {
	binary := flag.String("binary", "bin/intents-operator", "statically linked operator binary (CGO_ENABLED=0 GOOS=linux)")
	out := flag.String("out", "bin/intents-operator.tar", "tarball to write")
	ref := flag.String("tag", "ghcr.io/intentguard/intents-operator:dev", "image reference recorded in the tarball")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH the binary was built for")
	flag.Parse()
	img, err := image.Build(image.Spec{Binary: *binary, Path: "/intents-operator", Arch: *arch})
	if err == nil {
		err = image.WriteTarball(img, *ref, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
	digest, _ := img.Digest()
	fmt.Printf("%s %s\n", *out, digest)
}
