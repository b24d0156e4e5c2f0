package spire_test

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/credentials/spire"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/pki"
	"github.com/intentguard/intentguard/internal/principal"
	"github.com/intentguard/intentguard/internal/testsupport/spiretest"
)

const td = "example.org"

var server *spiretest.Server

func TestMain(m *testing.M) {
	ctx := context.Background()
	bin, err := spiretest.Binary(ctx)
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL: spire-server could not be built, and CI must test the SPIRE backend:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "SKIP: spire-server could not be built, so the SPIRE backend is not tested:", err)
		os.Exit(m.Run()) // the tests below skip without a server
	}
	if server, err = spiretest.Start(ctx, bin, td); err != nil {
		fmt.Fprintln(os.Stderr, "starting spire-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = server.Stop()
	os.Exit(code)
}

// callCounter counts gRPC calls by method.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

func dial(t *testing.T, parent string) (*spire.Backend, *callCounter) {
	t.Helper()
	return dialAs(t, parent, "test")
}

// dialAs connects as the install whose entry IDs carry prefix.
func dialAs(t *testing.T, parent, prefix string) (*spire.Backend, *callCounter) {
	t.Helper()
	if server == nil {
		t.Skip("spire-server could not be built (see hack/spire-binaries.sh)")
	}
	u, _ := url.Parse(parent)
	cc := &callCounter{calls: map[string]int{}}
	b, err := spire.Dial(spire.Config{SocketPath: server.Socket, ParentID: u, EntryIDPrefix: prefix, DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(cc.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, cc
}

func workload(name, sa string, dns ...string) backend.Workload {
	u, _ := url.Parse("spiffe://" + td + "/otterize/namespace/shop/service/" + name)
	return backend.Workload{SPIFFEID: u, Selectors: []string{"k8s:ns:shop", "k8s:sa:" + sa}, DNSNames: append([]string{name + ".shop"}, dns...), TTL: time.Hour}
}

func TestEntriesCreatedUpdatedRemovedAndOthersUntouched(t *testing.T) {
	ctx := context.Background()
	ours, _ := dial(t, "spiffe://"+td+"/intentguard/test-entries")
	theirs, _ := dial(t, "spiffe://"+td+"/someone-else")
	if _, err := theirs.Sync(ctx, []backend.Workload{workload("foreign", "foreign")}); err != nil {
		t.Fatal(err)
	}

	ch, err := ours.Sync(ctx, []backend.Workload{workload("a", "a"), workload("b", "b")})
	if err != nil || ch != (backend.Changes{Created: 2}) {
		t.Fatalf("first sync: %+v, %v", ch, err)
	}
	got, err := ours.ListOwned(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("entries after first sync: %+v, %v", got, err)
	}
	for _, e := range got {
		if !slices.Contains(e.Selectors, "k8s:ns:shop") || len(e.Selectors) != 2 {
			t.Errorf("entry %s selectors %v, want the namespace and the service account", e.SPIFFEID, e.Selectors)
		}
	}
	// Nothing changed: nothing written.
	if ch, err = ours.Sync(ctx, []backend.Workload{workload("b", "b"), workload("a", "a")}); err != nil || ch != (backend.Changes{}) {
		t.Fatalf("idle sync: %+v, %v", ch, err)
	}
	// a gets a DNS name, b goes away, c arrives.
	ch, err = ours.Sync(ctx, []backend.Workload{workload("a", "a", "a.example.com"), workload("c", "c")})
	if err != nil || ch != (backend.Changes{Created: 1, Updated: 1, Deleted: 1}) {
		t.Fatalf("second sync: %+v, %v", ch, err)
	}
	got, _ = ours.ListOwned(ctx)
	for _, e := range got {
		if e.SPIFFEID == "spiffe://"+td+"/otterize/namespace/shop/service/a" && !slices.Contains(e.DNSNames, "a.example.com") {
			t.Errorf("entry a not updated: %+v", e)
		}
	}
	if ch, err = ours.Sync(ctx, nil); err != nil || ch.Deleted != 2 {
		t.Fatalf("emptying sync: %+v, %v", ch, err)
	}
	foreign, err := theirs.ListOwned(ctx)
	if err != nil || len(foreign) != 1 {
		t.Errorf("the entry under another parent: %+v, %v; want it untouched", foreign, err)
	}
}

func TestSyncIsBatched(t *testing.T) {
	ctx := context.Background()
	b, calls := dial(t, "spiffe://"+td+"/intentguard/test-batch")
	var ws []backend.Workload
	for i := 0; i < 450; i++ {
		ws = append(ws, workload(fmt.Sprintf("w%03d", i), fmt.Sprintf("sa%03d", i)))
	}
	ch, err := b.Sync(ctx, ws)
	if err != nil || ch.Created != 450 {
		t.Fatalf("sync: %+v, %v", ch, err)
	}
	// One list, then 450 creates in batches of at most 200: 3 calls.
	if n := calls.total(); n != 1+3 {
		t.Errorf("%d SPIRE calls for 450 new entries, want 4 (%v)", n, calls.calls)
	}
	if ch, err := b.Sync(ctx, nil); err != nil || ch.Deleted != 450 {
		t.Fatalf("cleanup: %+v, %v", ch, err)
	}
}

func TestMintedSVIDVerifiesAndCarriesTheIdentity(t *testing.T) {
	ctx := context.Background()
	b, _ := dial(t, "spiffe://"+td+"/intentguard/test-mint")
	id := identity.Identity{Namespace: "shop", Name: "checkout", Kind: "Deployment"}
	spiffeID, _ := url.Parse("spiffe://" + td + "/otterize/namespace/shop/service/checkout")
	cred, err := b.Issue(ctx, backend.Request{
		SPIFFEID: spiffeID,
		Subject:  principal.Subject(id, principal.Organization),
		DNSNames: []string{"checkout.shop", "checkout.example.com"},
		TTL:      10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cred.Leaf()
	if err := pki.Verify(cred.Chain, cred.Roots, pki.ServerAuth|pki.ClientAuth); err != nil {
		t.Errorf("SVID does not verify against the SPIRE bundle: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID.String() {
		t.Errorf("URI SANs %v, want %s", leaf.URIs, spiffeID)
	}
	if !slices.Equal(leaf.DNSNames, []string{"checkout.shop", "checkout.example.com"}) {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	if life := time.Until(leaf.NotAfter); life > 11*time.Minute || life < 5*time.Minute {
		t.Errorf("SVID valid for %s, asked for 10m", life)
	}
	// The subject's RDNs in certificate order, O then CN, compared without any DN
	// renderer: a broker (RFC 2253, last RDN first) reads User:CN=checkout.shop,O=intentguard.
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(leaf.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint([]pkix.RelativeDistinguishedNameSET(rdns)), "[[{2.5.4.10 intentguard}] [{2.5.4.3 checkout.shop}]]"; got != want {
		t.Errorf("SVID subject RDNs %s, want %s", got, want)
	}
	if pub, ok := cred.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		t.Errorf("the credential's key is not the SVID's")
	}
}

// rawEntries is the SPIRE entry API without this package in between, as another tool
// (or an older install) sharing the server uses it.
func rawEntries(t *testing.T) entryv1.EntryClient {
	t.Helper()
	if server == nil {
		t.Skip("spire-server could not be built (see hack/spire-binaries.sh)")
	}
	conn, err := grpc.NewClient("unix://"+server.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return entryv1.NewEntryClient(conn)
}

func rawEntry(id, parent, name string) *types.Entry {
	return &types.Entry{
		Id:          id,
		ParentId:    &types.SPIFFEID{TrustDomain: td, Path: parent},
		SpiffeId:    &types.SPIFFEID{TrustDomain: td, Path: "/otterize/namespace/shop/service/" + name},
		Selectors:   []*types.Selector{{Type: "k8s", Value: "ns:shop"}, {Type: "k8s", Value: "sa:" + name}},
		DnsNames:    []string{name + ".shop"},
		X509SvidTtl: 3600,
	}
}

// Entries under the parent ID that this install did not create (no ID prefix, or another
// install's) are never listed as its own, updated or deleted.
func TestForeignEntriesUnderTheSameParentSurviveSync(t *testing.T) {
	ctx := context.Background()
	const parent = "/intentguard/credentials-operator"
	raw := rawEntries(t)
	resp, err := raw.BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{
		rawEntry("", parent, "unprefixed"),
		rawEntry("other-cluster.0123456789abcdef", parent, "other-install"),
		rawEntry("test-but-no-dot", parent, "lookalike"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var foreign []string
	for _, r := range resp.GetResults() {
		if r.GetStatus().GetCode() != 0 {
			t.Fatalf("creating a foreign entry: %v", r.GetStatus())
		}
		foreign = append(foreign, r.GetEntry().GetId())
	}
	t.Cleanup(func() { _, _ = raw.BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{Ids: foreign}) })

	ours, _ := dialAs(t, "spiffe://"+td+parent, "test")
	// Same SPIFFE ID as a foreign entry but another service account, a new one, and one
	// the other install's entry already grants exactly (left to it, without an error).
	ws := []backend.Workload{workload("unprefixed", "other-sa"), workload("mine", "mine"), workload("other-install", "other-install")}
	if ch, err := ours.Sync(ctx, ws); err != nil || ch != (backend.Changes{Created: 2}) {
		t.Fatalf("first sync: %+v, %v; want two entries created", ch, err)
	}
	owned, err := ours.ListOwned(ctx)
	if err != nil || len(owned) != 2 {
		t.Fatalf("owned entries %+v, %v; want the two this install created", owned, err)
	}
	for _, e := range owned {
		if !strings.HasPrefix(e.ID, "test.") {
			t.Errorf("entry %s of this install has ID %q, want the prefix test.", e.SPIFFEID, e.ID)
		}
	}
	if ch, err := ours.Sync(ctx, nil); err != nil || ch.Deleted != 2 {
		t.Fatalf("emptying sync: %+v, %v; want this install's two entries deleted", ch, err)
	}
	for _, id := range foreign {
		e, err := raw.GetEntry(ctx, &entryv1.GetEntryRequest{Id: id})
		if err != nil {
			t.Errorf("foreign entry %s: %v; want it untouched", id, err)
			continue
		}
		if e.GetX509SvidTtl() != 3600 || len(e.GetDnsNames()) != 1 {
			t.Errorf("foreign entry %s was changed: %+v", id, e)
		}
	}
}

// Two installs (two clusters) sharing a SPIRE server and a parent ID keep each their own
// entries: neither deletes or rewrites the other's.
func TestTwoInstallsSharingAServerKeepTheirEntries(t *testing.T) {
	ctx := context.Background()
	parent := "spiffe://" + td + "/intentguard/shared-parent"
	a, _ := dialAs(t, parent, "cluster-a")
	b, _ := dialAs(t, parent, "cluster-b")
	if ch, err := a.Sync(ctx, []backend.Workload{workload("a1", "a1"), workload("a2", "a2")}); err != nil || ch.Created != 2 {
		t.Fatalf("install a: %+v, %v", ch, err)
	}
	if ch, err := b.Sync(ctx, []backend.Workload{workload("b1", "b1", "b1.example.com")}); err != nil || ch != (backend.Changes{Created: 1}) {
		t.Fatalf("install b: %+v, %v; want one entry created and none of a's touched", ch, err)
	}
	if ch, err := a.Sync(ctx, []backend.Workload{workload("a1", "a1")}); err != nil || ch != (backend.Changes{Deleted: 1}) {
		t.Fatalf("install a drops a2: %+v, %v", ch, err)
	}
	if ch, err := b.Sync(ctx, []backend.Workload{workload("b1", "b1", "b1.example.com")}); err != nil || ch != (backend.Changes{}) {
		t.Fatalf("install b idle: %+v, %v", ch, err)
	}
	for _, c := range []struct {
		b    *spire.Backend
		want string
	}{{a, "a1"}, {b, "b1"}} {
		got, err := c.b.ListOwned(ctx)
		if err != nil || len(got) != 1 || !strings.HasSuffix(got[0].SPIFFEID, "/"+c.want) {
			t.Errorf("entries of the install serving %s: %+v, %v", c.want, got, err)
		}
	}
	_, _ = a.Sync(ctx, nil)
	_, _ = b.Sync(ctx, nil)
}
