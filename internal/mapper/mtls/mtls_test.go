package mtls

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/credfiles"
)

func load(t *testing.T, dir string) *Credentials {
	t.Helper()
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMutualTLS runs the aggregator's and agents' configurations over real connections:
// only an agent's certificate from the trusted CA is admitted, an agent accepts only the
// aggregator's certificate for the name it dials, and both take renewed files (a new CA
// included) without being made again.
func TestMutualTLS(t *testing.T) {
	ca := credfiles.NewCA(t, "mapper-ca")
	const agentCN, serverName = "ig-intentguard-mapper-agent.intentguard-system", "localhost"
	serverDir := t.TempDir()
	credfiles.Write(t, serverDir, ca, "ig-intentguard-mapper-aggregator.intentguard-system", pki.ServerAuth|pki.ClientAuth, serverName)
	serverCreds := load(t, serverDir)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(serverCreds, []string{agentCN}))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// post makes one request on a new connection with the client credentials in dir.
	post := func(t *testing.T, dir, server string) (string, error) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: ClientConfig(load(t, dir), server), DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + net.JoinHostPort(server, port) + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	agentDir := t.TempDir()
	credfiles.Write(t, agentDir, ca, agentCN, pki.ServerAuth|pki.ClientAuth)
	if got, err := post(t, agentDir, serverName); err != nil || got != agentCN {
		t.Fatalf("the agent's request: %q, %v", got, err)
	}

	t.Run("refused", func(t *testing.T) {
		other := t.TempDir()
		credfiles.Write(t, other, ca, "web.shop", pki.ServerAuth|pki.ClientAuth)
		if _, err := post(t, other, serverName); err == nil {
			t.Error("a workload other than the agents was admitted")
		}
		foreign := t.TempDir()
		credfiles.Write(t, foreign, credfiles.NewCA(t, "other-ca"), agentCN, pki.ServerAuth|pki.ClientAuth)
		if _, err := post(t, foreign, serverName); err == nil {
			t.Error("an agent certificate from another CA was admitted")
		}
		serverOnly := t.TempDir()
		credfiles.Write(t, serverOnly, ca, agentCN, pki.ServerAuth)
		if _, err := post(t, serverOnly, serverName); err == nil {
			t.Error("a certificate not issued for client use was admitted")
		}
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}).Get("https://127.0.0.1:" + port + "/")
		if err == nil {
			resp.Body.Close()
			t.Error("a client without a certificate was admitted")
		}
		if _, err := post(t, agentDir, "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the agent accepted the aggregator's certificate for a name it does not hold (%v)", err)
		}
	})

	t.Run("renewed files, a new CA", func(t *testing.T) {
		next := credfiles.NewCA(t, "mapper-ca-2")
		credfiles.Write(t, serverDir, next, "ig-intentguard-mapper-aggregator.intentguard-system", pki.ServerAuth|pki.ClientAuth, serverName)
		agent := load(t, agentDir)
		tr := &http.Transport{TLSClientConfig: ClientConfig(agent, serverName), DisableKeepAlives: true}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		if resp, err := client.Get("https://" + net.JoinHostPort(serverName, port) + "/"); err == nil {
			resp.Body.Close()
			t.Fatal("an agent trusting only the old CA accepted the aggregator's renewed certificate from the new one")
		}
		credfiles.Write(t, agentDir, next, agentCN, pki.ServerAuth|pki.ClientAuth)
		resp, err := client.Get("https://" + net.JoinHostPort(serverName, port) + "/")
		if err != nil {
			t.Fatalf("after both renewals, the same client and server: %v", err)
		}
		resp.Body.Close()
		served := resp.TLS.PeerCertificates[0]
		if err := served.CheckSignatureFrom(next.Cert); err != nil {
			t.Errorf("the aggregator serves a certificate the new CA did not sign: %v", err)
		}
	})
}

func TestLoadRefusesMissingOrBrokenFiles(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("loaded an empty directory")
	}
	dir := t.TempDir()
	credfiles.Write(t, dir, credfiles.NewCA(t, "ca"), "a.b", pki.ClientAuth)
	if err := os.WriteFile(filepath.Join(dir, CAFile), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Error("loaded a CA file without a certificate")
	}
}
