// Package crd embeds the CustomResourceDefinitions that controller-gen generates here.
package crd

import "embed"

// FS holds the generated CRD manifests.
//
//go:embed *.yaml
var FS embed.FS
