// Package spire is the credentials operator's SPIRE backend: it registers one entry per
// workload identity through the SPIRE server's entry API and mints X.509-SVIDs for the
// operator to deliver as Secrets through the svid API. Protobufs stay in this package.
package spire

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/pki"
)

// batchSize bounds the entries sent in one batch call, well under gRPC's default 4 MiB
// message limit even for entries with many DNS names.
const batchSize = 200

// bundleTTL is how long a fetched trust bundle is reused before asking again.
const bundleTTL = 10 * time.Second

// Config configures the SPIRE backend.
type Config struct {
	// SocketPath is the SPIRE server's admin API socket (server.socket_path).
	SocketPath string
	// ParentID is the parent of every entry this operator registers; entries under any
	// other parent are never listed, changed or deleted. In a cluster it is the SPIFFE ID
	// of the agents' node alias (or node) the workloads run on.
	ParentID *url.URL
	// EntryIDPrefix marks the entries of this install: every entry it creates has the ID
	// <prefix>.<random>, and only entries whose ID carries the prefix are ever listed as
	// its own, updated or deleted (as spire-controller-manager does with its
	// entryIDPrefix). Two clusters sharing a SPIRE server and a parent ID need two
	// prefixes.
	EntryIDPrefix string
	// Log receives one line per entry change.
	Log logr.Logger
	// DialOptions are added to the connection's (tests count calls with an interceptor).
	DialOptions []grpc.DialOption
}

// Backend talks to one SPIRE server.
type Backend struct {
	cfg     Config
	conn    *grpc.ClientConn
	entries entryv1.EntryClient
	svids   svidv1.SVIDClient
	bundles bundlev1.BundleClient

	mu        sync.Mutex
	roots     []*x509.Certificate
	rootsTime time.Time
}

// Dial connects to the SPIRE server's admin socket. The connection is lazy: an absent
// server shows up as an error on the first call, not here.
func Dial(cfg Config) (*Backend, error) {
	if cfg.ParentID == nil || cfg.ParentID.Scheme != "spiffe" {
		return nil, fmt.Errorf("the SPIRE parent ID %v is not a spiffe:// URI", cfg.ParentID)
	}
	if errs := validation.IsDNS1123Label(cfg.EntryIDPrefix); len(errs) > 0 {
		return nil, fmt.Errorf("SPIRE entry ID prefix %q: %s", cfg.EntryIDPrefix, strings.Join(errs, "; "))
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(countCalls),
	}, cfg.DialOptions...)
	conn, err := grpc.NewClient("unix://"+cfg.SocketPath, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the SPIRE server at %s: %w", cfg.SocketPath, err)
	}
	return &Backend{
		cfg: cfg, conn: conn,
		entries: entryv1.NewEntryClient(conn),
		svids:   svidv1.NewSVIDClient(conn),
		bundles: bundlev1.NewBundleClient(conn),
	}, nil
}

// calls counts the SPIRE server calls by method, on the operator's metrics endpoint, so
// that batching can be observed in production as in the bench.
var calls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "intentguard_spire_calls_total",
	Help: "Calls to the SPIRE server API by method and gRPC code.",
}, []string{"method", "code"})

func init() { metrics.Registry.MustRegister(calls) }

func countCalls(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	calls.WithLabelValues(method[strings.LastIndexByte(method, '/')+1:], status.Code(err).String()).Inc()
	return err
}

// Close closes the connection.
func (b *Backend) Close() error { return b.conn.Close() }

// Issue mints an X.509-SVID for req from a CSR signed with a fresh key.
func (b *Backend) Issue(ctx context.Context, req backend.Request) (*backend.Credential, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  req.Subject,
		DNSNames: req.DNSNames,
		URIs:     []*url.URL{req.SPIFFEID},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("creating CSR for %s: %w", req.SPIFFEID, err)
	}
	resp, err := b.svids.MintX509SVID(ctx, &svidv1.MintX509SVIDRequest{Csr: csr, Ttl: int32(req.TTL / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("minting X.509-SVID for %s: %w", req.SPIFFEID, err)
	}
	var chain []*x509.Certificate
	for _, der := range resp.GetSvid().GetCertChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parsing minted SVID for %s: %w", req.SPIFFEID, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("SPIRE minted an empty chain for %s", req.SPIFFEID)
	}
	roots, err := b.Roots(ctx)
	if err != nil {
		return nil, err
	}
	return &backend.Credential{Key: key, Chain: chain, Roots: roots}, nil
}

// BundleID identifies the trust domain's current X.509 authorities.
func (b *Backend) BundleID(ctx context.Context) (string, error) {
	roots, err := b.Roots(ctx)
	if err != nil {
		return "", err
	}
	return pki.Fingerprint(roots), nil
}

// Roots returns the trust domain's X.509 authorities (tainted ones left out), fetched
// at most every few seconds.
func (b *Backend) Roots(ctx context.Context) ([]*x509.Certificate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.roots != nil && time.Since(b.rootsTime) < bundleTTL {
		return b.roots, nil
	}
	bundle, err := b.bundles.GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		return nil, fmt.Errorf("reading the SPIRE trust bundle: %w", err)
	}
	var roots []*x509.Certificate
	for _, a := range bundle.GetX509Authorities() {
		if a.GetTainted() {
			continue
		}
		c, err := x509.ParseCertificate(a.GetAsn1())
		if err != nil {
			return nil, fmt.Errorf("parsing a SPIRE X.509 authority: %w", err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, errors.New("the SPIRE trust bundle has no usable X.509 authority")
	}
	b.roots, b.rootsTime = roots, time.Now()
	return roots, nil
}

// Entry is a registration entry as this package compares them.
type Entry struct {
	ID        string
	SPIFFEID  string
	Selectors []string
	DNSNames  []string
	TTL       int32
}

// ListOwned returns the entries of this install: under the configured parent ID, with
// an ID that carries the entry ID prefix.
func (b *Backend) ListOwned(ctx context.Context) ([]Entry, error) {
	parent := spiffeID(b.cfg.ParentID)
	var out []Entry
	token := ""
	for {
		resp, err := b.entries.ListEntries(ctx, &entryv1.ListEntriesRequest{
			Filter:    &entryv1.ListEntriesRequest_Filter{ByParentId: parent},
			PageSize:  1000,
			PageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("listing SPIRE entries of %s: %w", b.cfg.ParentID, err)
		}
		for _, e := range resp.GetEntries() {
			if b.owns(e.GetId()) {
				out = append(out, fromProto(e))
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// Sync makes the entries under the parent ID exactly one per workload, in batches.
func (b *Backend) Sync(ctx context.Context, workloads []backend.Workload) (backend.Changes, error) {
	current, err := b.ListOwned(ctx)
	if err != nil {
		return backend.Changes{}, err
	}
	create, update, del := Diff(b.desired(workloads), current)
	var ch backend.Changes
	var errs []error
	for i := range create {
		if create[i].ID, err = b.newID(); err != nil {
			return backend.Changes{}, err
		}
	}
	for chunk := range slices.Chunk(create, batchSize) {
		resp, err := b.entries.BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: b.toProto(chunk)})
		if err != nil {
			return ch, fmt.Errorf("creating %d SPIRE entries: %w", len(chunk), err)
		}
		for i, r := range resp.GetResults() {
			if codes.Code(r.GetStatus().GetCode()) == codes.AlreadyExists {
				// An entry of another install (or one made before entries carried a
				// prefix) already grants this identity with these selectors: it is not
				// ours to change, and the workload is served by it.
				b.cfg.Log.Info("a SPIRE entry this install does not own already grants the identity; left alone",
					"spiffeID", chunk[i].SPIFFEID, "id", r.GetEntry().GetId(), "selectors", chunk[i].Selectors)
				continue
			}
			if err := statusErr(r.GetStatus()); err != nil {
				errs = append(errs, fmt.Errorf("creating SPIRE entry %s: %w", chunk[i].SPIFFEID, err))
				continue
			}
			ch.Created++
			b.cfg.Log.Info("created SPIRE entry", "spiffeID", chunk[i].SPIFFEID, "id", r.GetEntry().GetId(), "selectors", chunk[i].Selectors)
		}
	}
	for chunk := range slices.Chunk(update, batchSize) {
		resp, err := b.entries.BatchUpdateEntry(ctx, &entryv1.BatchUpdateEntryRequest{
			Entries:   b.toProto(chunk),
			InputMask: &types.EntryMask{DnsNames: true, X509SvidTtl: true},
		})
		if err != nil {
			return ch, fmt.Errorf("updating %d SPIRE entries: %w", len(chunk), err)
		}
		for i, r := range resp.GetResults() {
			if err := statusErr(r.GetStatus()); err != nil {
				errs = append(errs, fmt.Errorf("updating SPIRE entry %s: %w", chunk[i].SPIFFEID, err))
				continue
			}
			ch.Updated++
			b.cfg.Log.Info("updated SPIRE entry", "spiffeID", chunk[i].SPIFFEID, "id", chunk[i].ID, "selectors", chunk[i].Selectors)
		}
	}
	for chunk := range slices.Chunk(del, batchSize) {
		ids := make([]string, len(chunk))
		for i, e := range chunk {
			ids[i] = e.ID
		}
		resp, err := b.entries.BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{Ids: ids})
		if err != nil {
			return ch, fmt.Errorf("deleting %d SPIRE entries: %w", len(chunk), err)
		}
		for i, r := range resp.GetResults() {
			if err := statusErr(r.GetStatus()); err != nil && codes.Code(r.GetStatus().GetCode()) != codes.NotFound {
				errs = append(errs, fmt.Errorf("deleting SPIRE entry %s: %w", chunk[i].ID, err))
				continue
			}
			ch.Deleted++
			b.cfg.Log.Info("deleted SPIRE entry", "spiffeID", chunk[i].SPIFFEID, "id", chunk[i].ID)
		}
	}
	return ch, errors.Join(errs...)
}

func (b *Backend) owns(id string) bool {
	return strings.HasPrefix(id, b.cfg.EntryIDPrefix+".")
}

// newID returns a fresh entry ID carrying the install's prefix.
func (b *Backend) newID() (string, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("drawing a SPIRE entry ID: %w", err)
	}
	return b.cfg.EntryIDPrefix + "." + hex.EncodeToString(raw), nil
}

func (b *Backend) desired(workloads []backend.Workload) []Entry {
	out := make([]Entry, 0, len(workloads))
	for _, w := range workloads {
		out = append(out, normalize(Entry{
			SPIFFEID:  w.SPIFFEID.String(),
			Selectors: slices.Clone(w.Selectors),
			DNSNames:  slices.Clone(w.DNSNames),
			TTL:       int32(w.TTL / time.Second),
		}))
	}
	return out
}

// Diff compares desired entries with the current ones. An entry is keyed by its SPIFFE ID
// and selectors (a workload whose pods run under two service accounts, mid-rollout, has
// two entries); it returns the entries to create, those to update (current IDs with the
// desired DNS names and TTL) and those to delete (no longer wanted, or duplicates).
func Diff(desired, current []Entry) (create, update, del []Entry) {
	want := map[string]Entry{}
	var order []string
	for _, d := range desired {
		d = normalize(d)
		k := key(d)
		if _, ok := want[k]; !ok {
			order = append(order, k)
		}
		want[k] = d
	}
	seen := map[string]bool{}
	current = slices.Clone(current)
	sort.Slice(current, func(i, j int) bool { return current[i].ID < current[j].ID })
	for _, c := range current {
		c = normalize(c)
		k := key(c)
		d, ok := want[k]
		if !ok || seen[k] {
			del = append(del, c)
			continue
		}
		seen[k] = true
		if !equal(c, d) {
			d.ID = c.ID
			update = append(update, d)
		}
	}
	for _, k := range order {
		if !seen[k] {
			create = append(create, want[k])
		}
	}
	return create, update, del
}

func key(e Entry) string { return e.SPIFFEID + "|" + strings.Join(e.Selectors, ",") }

func normalize(e Entry) Entry {
	e.Selectors = slices.Clone(e.Selectors)
	e.DNSNames = slices.Clone(e.DNSNames)
	sort.Strings(e.Selectors)
	e.Selectors = slices.Compact(e.Selectors)
	return e
}

func equal(a, b Entry) bool {
	return a.SPIFFEID == b.SPIFFEID && a.TTL == b.TTL && slices.Equal(a.Selectors, b.Selectors) && slices.Equal(a.DNSNames, b.DNSNames)
}

func (b *Backend) toProto(entries []Entry) []*types.Entry {
	out := make([]*types.Entry, len(entries))
	for i, e := range entries {
		u, _ := url.Parse(e.SPIFFEID)
		var sels []*types.Selector
		for _, s := range e.Selectors {
			typ, val, _ := strings.Cut(s, ":")
			sels = append(sels, &types.Selector{Type: typ, Value: val})
		}
		out[i] = &types.Entry{
			Id:          e.ID,
			SpiffeId:    spiffeID(u),
			ParentId:    spiffeID(b.cfg.ParentID),
			Selectors:   sels,
			DnsNames:    e.DNSNames,
			X509SvidTtl: e.TTL,
		}
	}
	return out
}

func fromProto(e *types.Entry) Entry {
	out := Entry{ID: e.GetId(), SPIFFEID: idString(e.GetSpiffeId()), DNSNames: e.GetDnsNames(), TTL: e.GetX509SvidTtl()}
	for _, s := range e.GetSelectors() {
		out.Selectors = append(out.Selectors, s.GetType()+":"+s.GetValue())
	}
	return out
}

func spiffeID(u *url.URL) *types.SPIFFEID {
	return &types.SPIFFEID{TrustDomain: u.Host, Path: u.Path}
}

func idString(id *types.SPIFFEID) string {
	return (&url.URL{Scheme: "spiffe", Host: id.GetTrustDomain(), Path: id.GetPath()}).String()
}

func statusErr(s *types.Status) error {
	if s == nil || codes.Code(s.GetCode()) == codes.OK {
		return nil
	}
	return fmt.Errorf("%s: %s", codes.Code(s.GetCode()), s.GetMessage())
}
