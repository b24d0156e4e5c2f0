package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/mapper/aggregator"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/mtls"
	"github.com/intentguard/intentguard/internal/mapper/observation"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/credfiles"
	"github.com/intentguard/intentguard/internal/testsupport/process"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// The binary against an API server: it becomes ready once it has listed the pods,
// records a batch, and after SIGTERM and a new start has the same map and recognises the
// batch if it is sent again. Started again with --read-listen, it serves the map on that
// port only and batches on the other only, as the chart runs it.
func TestAggregatorProcessRestart(t *testing.T) {
	c, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	ctx := context.Background()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	for name, ip := range map[string]string{"web": "10.244.1.1", "api": "10.244.1.2"} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}
		if err := kube.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if err := kube.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mapper-aggregator")
	if err := process.Build(".", bin); err != nil {
		t.Fatal(err)
	}
	port, err := process.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	readURL := url
	start := func(extra ...string) *process.Process {
		cmd := exec.Command(bin, append([]string{"--kubeconfig", c.Kubeconfig, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--db", filepath.Join(dir, "map.db")}, extra...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		p, err := process.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(process.StopGrace) })
		suite.WaitFor(t, "the aggregator to be ready", 30*time.Second, func() (bool, error) {
			resp, err := http.Get(readURL + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
		return p
	}
	list := func() []edges.Edge {
		resp, err := http.Get(readURL + aggregator.EdgesPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []edges.Edge
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	client := http.DefaultClient
	post := func(b observation.Batch) aggregator.Result {
		body, _ := json.Marshal(b)
		resp, err := client.Post(url+aggregator.BatchPath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("batch: %s", resp.Status)
		}
		var r aggregator.Result
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	p := start()
	batch := observation.Batch{Agent: "node-1", Boot: time.Now(), Seq: 1, Connections: []observation.Connection{{
		Time: time.Now(), Node: "node-1", SrcIP: netip.MustParseAddr("10.244.1.1"), SrcPort: 40000,
		DstIP: netip.MustParseAddr("10.244.1.2"), DstPort: 8080, Protocol: observation.ProtocolTCP, Source: observation.SourceSYN,
	}}}
	if r := post(batch); r.Recorded != 1 {
		t.Fatalf("result %+v", r)
	}
	before := list()
	if len(before) != 1 || before[0].Client.String() != "Pod/shop/web" || before[0].Server.String() != "Pod/shop/api" || before[0].Count != 1 {
		t.Fatalf("edges %+v", before)
	}
	p.Stop(process.StopGrace)
	if err := p.Err(); err != nil {
		t.Fatalf("the aggregator did not stop cleanly on SIGTERM: %v", err)
	}
	p = start()
	after := list()
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		t.Errorf("after a restart\n got %+v\nwant %+v", after, before)
	}
	if r := post(batch); !r.Repeat {
		t.Errorf("batch sent again after the restart: %+v", r)
	}
	if got := list(); len(got) != 1 || got[0].Count != 1 {
		t.Errorf("after the repeat: %+v", got)
	}

	p.Stop(process.StopGrace)
	readPort, err := process.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	readURL = fmt.Sprintf("http://127.0.0.1:%d", readPort)
	p = start("--read-listen", fmt.Sprintf("127.0.0.1:%d", readPort), "--edge-retention", "1h")
	if got := list(); len(got) != 1 || got[0].Count != 1 {
		t.Errorf("the map on the read port: %+v", got)
	}
	batch.Seq = 2
	if r := post(batch); r.Recorded != 1 {
		t.Errorf("batch on the agents' port with the map apart: %+v", r)
	}
	status := func(method, url string) int {
		req, _ := http.NewRequest(method, url, bytes.NewReader([]byte("{}")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status(http.MethodGet, url+aggregator.EdgesPath); code != http.StatusNotFound {
		t.Errorf("the map on the agents' port: %d, want 404", code)
	}
	if code := status(http.MethodPost, readURL+aggregator.BatchPath); code != http.StatusNotFound {
		t.Errorf("a batch on the read port: %d, want 404", code)
	}

	// With mutual TLS on the batch port: an agent's certificate is admitted, plain HTTP
	// and other workloads' certificates are not; the map's port stays as it was.
	p.Stop(process.StopGrace)
	ca := credfiles.NewCA(t, "mapper-ca")
	serverDir, agentDir, otherDir := t.TempDir(), t.TempDir(), t.TempDir()
	credfiles.Write(t, serverDir, ca, "mapper-aggregator.ops", pki.ServerAuth|pki.ClientAuth, "localhost")
	credfiles.Write(t, agentDir, ca, "mapper-agent.ops", pki.ServerAuth|pki.ClientAuth)
	credfiles.Write(t, otherDir, ca, "web.shop", pki.ServerAuth|pki.ClientAuth)
	start("--read-listen", fmt.Sprintf("127.0.0.1:%d", readPort), "--tls-dir", serverDir, "--agent-identities", "mapper-agent.ops,mapper-agent.other")
	tlsClient := func(dir string) *http.Client {
		creds, err := mtls.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: mtls.ClientConfig(creds, "localhost")}, Timeout: 5 * time.Second}
	}
	plainURL := url
	url = fmt.Sprintf("https://localhost:%d", port)
	client = tlsClient(agentDir)
	batch.Seq = 3
	if r := post(batch); r.Recorded != 1 {
		t.Errorf("an agent's batch over mutual TLS: %+v", r)
	}
	if got := list(); len(got) != 1 || got[0].Count != 3 {
		t.Errorf("the map after three batches: %+v", got)
	}
	batch.Seq = 4
	body, _ := json.Marshal(batch)
	for name, try := range map[string]func() (*http.Response, error){
		"plain HTTP": func() (*http.Response, error) {
			return http.Post(plainURL+aggregator.BatchPath, "application/json", bytes.NewReader(body))
		},
		"another workload's certificate": func() (*http.Response, error) {
			return tlsClient(otherDir).Post(url+aggregator.BatchPath, "application/json", bytes.NewReader(body))
		},
	} {
		if resp, err := try(); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("a batch over %s was accepted", name)
			}
		}
	}
	if got := list(); len(got) != 1 || got[0].Count != 3 {
		t.Errorf("refused batches were counted: %+v", got)
	}
}
