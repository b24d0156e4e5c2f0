package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/mtls"
	"github.com/intentguard/intentguard/internal/mapper/observation"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/credfiles"
)

// The agent's --tls-dir: batches reach an aggregator that admits the agent's
// certificate only; an http URL with it is refused rather than sent in the clear.
func TestAgentSendsOverMutualTLS(t *testing.T) {
	ca := credfiles.NewCA(t, "mapper-ca")
	serverDir, agentDir := t.TempDir(), t.TempDir()
	credfiles.Write(t, serverDir, ca, "mapper-aggregator.ops", pki.ServerAuth|pki.ClientAuth, "localhost")
	credfiles.Write(t, agentDir, ca, "mapper-agent.ops", pki.ServerAuth|pki.ClientAuth)
	serverCreds, err := mtls.Load(serverDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", mtls.ServerConfig(serverCreds, []string{"mapper-agent.ops"}))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got <- r.TLS.PeerCertificates[0].Subject.CommonName + " " + r.URL.Path
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	url := "https://localhost:" + port

	if _, err := tlsClient(agentDir, "http://localhost:"+port); err == nil {
		t.Error("--tls-dir with an http URL was accepted")
	}
	client, err := tlsClient(agentDir, url)
	if err != nil {
		t.Fatal(err)
	}
	sender := agent.HTTPSender{URL: url, Client: client}
	if err := sender.Send(context.Background(), observation.Batch{Agent: "node-1", Boot: time.Now(), Seq: 1}); err != nil {
		t.Fatalf("sending over mutual TLS: %v", err)
	}
	if g := <-got; g != "mapper-agent.ops "+agent.BatchPath {
		t.Errorf("the aggregator saw %q", g)
	}
}
