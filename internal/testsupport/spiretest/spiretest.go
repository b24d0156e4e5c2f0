// Package spiretest runs a real spire-server on the loopback interface for tests and
// benchmarks: sqlite datastore, in-memory keys, join-token node attestation, admin API
// on a unix socket. The binary comes from hack/spire-binaries.sh (built once, cached).
package spiretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// BinEnv names a directory holding spire-server, overriding the build script.
const BinEnv = "SPIRE_BIN_DIR"

// Server is a running spire-server.
type Server struct {
	// Socket is the admin API socket.
	Socket string
	// TrustDomain is the server's trust domain.
	TrustDomain string

	proc *process.Process
	dir  string
	log  *bytes.Buffer
}

// Binary returns the path of spire-server, building it with hack/spire-binaries.sh when
// $SPIRE_BIN_DIR is not set.
func Binary(ctx context.Context) (string, error) {
	dir, err := process.BinDir(ctx, BinEnv, filepath.Join("hack", "spire-binaries.sh"))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "spire-server")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("spire-server: %w", err)
	}
	return bin, nil
}

// Start runs spire-server with the trust domain and waits until its admin socket answers.
func Start(ctx context.Context, bin, trustDomain string) (*Server, error) {
	dir, err := os.MkdirTemp("", "intentguard-spire-")
	if err != nil {
		return nil, err
	}
	port, err := process.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Socket: filepath.Join(dir, "api.sock"), TrustDomain: trustDomain, dir: dir, log: &bytes.Buffer{}}
	conf := fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "WARN"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`, port, s.Socket, trustDomain, filepath.Join(dir, "data"), filepath.Join(dir, "datastore.sqlite3"))
	confPath := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", confPath)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if s.proc, err = process.Start(cmd); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		hc := exec.CommandContext(ctx, bin, "healthcheck", "-socketPath", s.Socket)
		if err := hc.Run(); err == nil {
			return s, nil
		}
		select {
		case <-s.proc.Exited():
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("spire-server exited (%v): %s", s.proc.Err(), s.log.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return nil, errors.New("spire-server did not become healthy within a minute: " + s.log.String())
		}
	}
}

// Stop ends the server and removes its files.
func (s *Server) Stop() error {
	s.proc.Stop(10 * time.Second)
	return os.RemoveAll(s.dir)
}
