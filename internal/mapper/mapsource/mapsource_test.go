package mapsource

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

func sample() []edges.Edge {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return []edges.Edge{{
		Key: edges.Key{
			Client:   edges.Peer{Kind: edges.PeerWorkload, Namespace: "shop", Name: "checkout", WorkloadKind: "Deployment"},
			Server:   edges.Peer{Kind: edges.PeerService, Namespace: "shop", Name: "shipping"},
			Port:     8080,
			Protocol: "TCP",
		},
		DNSNames:  []string{"shipping.shop.svc.cluster.local"},
		FirstSeen: t0,
		LastSeen:  t0.Add(time.Minute),
		Count:     12,
		Agents:    []string{"node-a"},
	}}
}

func TestLoadFromEveryKindOfSource(t *testing.T) {
	want := sample()
	body, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path != EdgesPath {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "map.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{srv.URL, srv.URL + "/", srv.URL + EdgesPath, file, "-"} {
		got, err := Load(context.Background(), src, strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v, want %+v", src, got, want)
		}
	}
	for _, p := range paths {
		if p != EdgesPath {
			t.Fatalf("asked the aggregator for %q", p)
		}
	}
}

func TestLoadRefusesWhatIsNotAMap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "informers not synced", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cases := map[string]struct{ src, stdin, want string }{
		"no source":      {"", "", "no map given"},
		"server refuses": {srv.URL, "", "503"},
		"not JSON":       {"-", "edges: []", "JSON array of edges"},
		"unknown kind":   {"-", `[{"client":{"kind":"pod","name":"a"},"server":{"kind":"node","name":"n"}}]`, `unknown kind "pod"`},
		"no name":        {"-", `[{"client":{"kind":"workload","namespace":"a"},"server":{"kind":"node","name":"n"}}]`, "client workload needs a name"},
		"missing file":   {filepath.Join(t.TempDir(), "absent.json"), "", "reading the map"},
	}
	for name, c := range cases {
		_, err := Load(context.Background(), c.src, strings.NewReader(c.stdin))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}
