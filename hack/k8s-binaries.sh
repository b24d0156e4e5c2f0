#!/usr/bin/env bash
# Builds the control-plane binaries the tests and the local cluster run (kube-apiserver,
# kube-controller-manager, etcd, and kubectl for rendering the kustomize manifests) from Go modules, once, into a cache directory, and prints
# that directory. envtest reads it through KUBEBUILDER_ASSETS.
#
# The envtest release downloads are not reachable from every build machine, so the
# binaries come from the Go module proxy instead:
#   - kube-apiserver and kube-controller-manager from k8s.io/kubernetes, in a throw-away
#     module that replaces each k8s.io/<staging> module with its published v0.x twin;
#   - etcd from go.etcd.io/etcd/server/v3, added as a tool because its replace directives
#     make `go install pkg@version` refuse it.
# Cold: about 10 minutes on 2 cores. Warm: instant.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${INTENTGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/intentguard}"
BIN_DIR="$CACHE_ROOT/k8s-v$K8S_VERSION"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

log() { echo "k8s-binaries: $*" >&2; }

mkdir -p "$BIN_DIR"
if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && [ -x "$BIN_DIR/kubectl" ] && [ -x "$BIN_DIR/etcd" ]; then
  echo "$BIN_DIR"
  exit 0
fi

work="$CACHE_ROOT/build"
mkdir -p "$work"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

if [ ! -x "$BIN_DIR/kube-apiserver" ] || [ ! -x "$BIN_DIR/kube-controller-manager" ] || [ ! -x "$BIN_DIR/kubectl" ]; then
  mod="$work/kubernetes-v$K8S_VERSION"
  mkdir -p "$mod"
  log "building kube-apiserver, kube-controller-manager and kubectl v$K8S_VERSION (first run only, ~10 min)"
  staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice
    externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl
    kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
    sample-controller streaming)
  {
    echo "module intentguard.local/k8sbinaries"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    for s in "${staging[@]}"; do echo "	k8s.io/$s => k8s.io/$s $STAGING_VERSION"; done
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'GO'
//go:build tools

package k8sbinaries

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (
    cd "$mod"
    go mod tidy -e >/dev/null 2>&1 || true
    pkg=k8s.io/component-base/version
    minor="${K8S_VERSION#1.}"
    minor="${minor%%.*}"
    ldflags="-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
    for b in kube-apiserver kube-controller-manager kubectl; do
      [ -x "$BIN_DIR/$b" ] && continue
      go build -tags tools -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$b.tmp" "k8s.io/kubernetes/cmd/$b"
      mv "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
    done
  )
fi

if [ ! -x "$BIN_DIR/etcd" ]; then
  mod="$work/etcd-v$ETCD_VERSION"
  mkdir -p "$mod"
  log "building etcd v$ETCD_VERSION (first run only, ~1 min)"
  (
    cd "$mod"
    [ -f go.mod ] || go mod init intentguard.local/etcdbinary >/dev/null 2>&1
    go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
  )
fi

echo "$BIN_DIR"
