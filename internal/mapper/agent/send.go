package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// BatchPath is where the aggregator accepts batches.
const BatchPath = "/v1/batches"

// HTTPSender posts batches as JSON to the aggregator.
type HTTPSender struct {
	// URL is the aggregator's base URL, e.g. http://mapper-aggregator:8080.
	URL string
	// Client is the HTTP client to use; http.DefaultClient if nil.
	Client *http.Client
}

// Send posts b and expects a 2xx answer. A retry after a lost answer carries the same
// Agent, Boot and Seq, which is how the aggregator recognises the repeat.
func (s HTTPSender) Send(ctx context.Context, b observation.Batch) error {
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding batch %d: %w", b.Seq, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+BatchPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request for batch %d: %w", b.Seq, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sending batch %d: %w", b.Seq, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sending batch %d: aggregator answered %s: %s", b.Seq, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
