// Package mapsource reads the network map the aggregator serves, from its HTTP endpoint,
// from a file saved from it, or from standard input, for the CLI's map commands.
package mapsource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// EdgesPath is where the aggregator serves its map.
const EdgesPath = "/v1/edges"

// maxBytes bounds what is read: 100,000 edges take about 60 MB of JSON.
const maxBytes = 256 << 20

// Load reads the map from src: an http(s) URL (the aggregator's base URL, or the full
// URL of its edges endpoint), "-" for stdin, or a file path.
func Load(ctx context.Context, src string, stdin io.Reader) ([]edges.Edge, error) {
	switch {
	case src == "":
		return nil, fmt.Errorf("no map given: name the aggregator's URL, a file saved from %s, or - for standard input", EdgesPath)
	case src == "-":
		return decode("standard input", stdin)
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		return fetch(ctx, src)
	default:
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("reading the map: %w", err)
		}
		defer f.Close()
		return decode(src, f)
	}
}

func fetch(ctx context.Context, src string) ([]edges.Edge, error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("map URL %q: %w", src, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = EdgesPath
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("map URL %q: %w", src, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the map: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("fetching the map from %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return decode(u.String(), resp.Body)
}

func decode(name string, r io.Reader) ([]edges.Edge, error) {
	var out []edges.Edge
	dec := json.NewDecoder(io.LimitReader(r, maxBytes))
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("reading the map from %s (a JSON array of edges, as %s serves): %w", name, EdgesPath, err)
	}
	for i, e := range out {
		if err := check(e); err != nil {
			return nil, fmt.Errorf("reading the map from %s: edge %d: %w", name, i, err)
		}
	}
	return out, nil
}

// check refuses edges whose ends cannot be told: an unknown kind, no name. A workload
// or Service without a namespace is read (the aggregator never writes one, a file
// edited by hand may): map export lists it as one no ClientIntents can name.
func check(e edges.Edge) error {
	for _, p := range []struct {
		end  string
		peer edges.Peer
	}{{"client", e.Client}, {"server", e.Server}} {
		switch p.peer.Kind {
		case edges.PeerWorkload, edges.PeerService, edges.PeerNode, edges.PeerExternal:
			if p.peer.Name == "" {
				return fmt.Errorf("%s %s needs a name", p.end, p.peer.Kind)
			}
		default:
			return fmt.Errorf("%s has unknown kind %q", p.end, p.peer.Kind)
		}
	}
	return nil
}
