#!/usr/bin/env bash
# Builds spire-server (SPIRE v1.13.3) from Go modules, once, into a cache directory, and
# prints that directory. The SPIRE backend's tests run it on 127.0.0.1 with a sqlite
# datastore, read its admin API on a unix socket, and skip only when this script fails.
#
# SPIRE is a program, not a library: it is added as a tool to a throw-away module (no
# version is listed by the module proxy, so `go install pkg@version` is refused) and then
# built from there.
#   - GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy: one of SPIRE's transitive
#     dependencies fails its checksum-database lookup; its hash is still checked against
#     the go.sum the build writes.
#   - CGO_ENABLED=1: the sqlite datastore SPIRE uses here is a cgo package (gcc needed).
# Cold: about 5 minutes on 2 cores. Warm: instant.
set -euo pipefail

SPIRE_VERSION="${SPIRE_VERSION:-1.13.3}"
CACHE_ROOT="${INTENTGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/intentguard}"
BIN_DIR="$CACHE_ROOT/spire-v$SPIRE_VERSION"

log() { echo "spire-binaries: $*" >&2; }

mkdir -p "$BIN_DIR"
if [ -x "$BIN_DIR/spire-server" ]; then
  echo "$BIN_DIR"
  exit 0
fi

mod="$CACHE_ROOT/build/spire-v$SPIRE_VERSION"
mkdir -p "$mod"
log "building spire-server v$SPIRE_VERSION (first run only, ~5 min)"
(
  cd "$mod"
  export GOFLAGS="-mod=mod"
  export CGO_ENABLED=1
  export GONOSUMDB="github.com/GoogleCloudPlatform/cloudsql-proxy${GONOSUMDB:+,$GONOSUMDB}"
  [ -f go.mod ] || go mod init intentguard.local/spirebinary >/dev/null 2>&1
  go get -tool "github.com/spiffe/spire/cmd/spire-server@v$SPIRE_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/spire-server.tmp" github.com/spiffe/spire/cmd/spire-server
  mv "$BIN_DIR/spire-server.tmp" "$BIN_DIR/spire-server"
)

echo "$BIN_DIR"
