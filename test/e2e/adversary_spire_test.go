package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/testsupport/spiretest"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

const (
	spireTD     = "example.org"
	spireParent = "/intentguard/adversary"
	// spirePrefix is the entry ID prefix of the install under test (from its cluster name).
	spirePrefix = "intentguard-adv."
)

// spireEntry is what of a SPIRE entry the test holds unchanged or checks.
type spireEntry struct {
	ID, SPIFFEID string
	Selectors    []string
	DNSNames     []string
	TTL          int32
	// Revision counts the entry's updates.
	Revision int64
}

func (e spireEntry) String() string {
	return fmt.Sprintf("%s %s selectors %v dns %v ttl %d revision %d", e.ID, e.SPIFFEID, e.Selectors, e.DNSNames, e.TTL, e.Revision)
}

func entryOf(e *types.Entry) spireEntry {
	out := spireEntry{ID: e.GetId(), DNSNames: slices.Clone(e.GetDnsNames()), TTL: e.GetX509SvidTtl(), Revision: e.GetRevisionNumber(),
		SPIFFEID: "spiffe://" + e.GetSpiffeId().GetTrustDomain() + e.GetSpiffeId().GetPath()}
	for _, s := range e.GetSelectors() {
		out.Selectors = append(out.Selectors, s.GetType()+":"+s.GetValue())
	}
	sort.Strings(out.Selectors)
	sort.Strings(out.DNSNames)
	return out
}

// spiffeOf is the SPIFFE ID of a workload, written out in the default format.
func spiffeOf(ns, name string) string {
	return "spiffe://" + spireTD + "/otterize/namespace/" + ns + "/service/" + name
}

// tenantPod is a tenant pod asking for credentials.
type tenantPod struct {
	name, identity string
	// foreign are the names of its dns-names annotation outside the tenant's namespace;
	// claimed says its identity is a name from the workload-name annotation.
	foreign []string
	claimed bool
	// names are all the names of its dns-names annotation.
	names []string
}

// testSPIREEntries is the SPIRE part of the adversarial test: the credentials operator
// with the SPIRE backend registers the victims' workloads; an entry made by hand (no
// prefix) and one of another install (another prefix) share the parent ID. A tenant's
// pods ask for credentials naming the victims' DNS names, wider names, and the victims'
// workload names. After each step the victims' and the foreign entries are the same
// entries (IDs, SPIFFE IDs, selectors, DNS names, TTLs), every other entry is the
// tenant's own (its namespace in SPIFFE ID, selectors and DNS names), a tenant pod whose
// request stays in its namespace has its entry and one that does not has none.
func testSPIREEntries(t *testing.T, seed int64, steps int, replay string) {
	ctx := context.Background()
	bin, err := spiretest.Binary(ctx)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("spire-server could not be built, and CI must run the SPIRE part of the adversarial test: %v", err)
		}
		t.Skipf("spire-server could not be built, so the SPIRE part is not run: %v", err)
	}
	srv, err := spiretest.Start(ctx, bin, spireTD)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	conn, err := grpc.NewClient("unix://"+srv.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	raw := entryv1.NewEntryClient(conn)
	rnd := rand.New(rand.NewSource(seed))

	opNS := env.Namespace(t, "advs-system")
	victims := []string{env.Namespace(t, "advs-v0"), env.Namespace(t, "advs-v1")}
	tenant := env.Namespace(t, "advs-t0")
	var log []string
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d (replay: %s): %s\nchanges so far:\n%s", seed, step, replay, fmt.Sprintf(format, args...), strings.Join(log, "\n"))
	}

	// Entries under the same parent that are not this install's: one made by hand for a
	// victim namespace's workload, one of another install whose prefix starts alike.
	foreignIDs := map[string]bool{}
	resp, err := raw.BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{
		{ParentId: &types.SPIFFEID{TrustDomain: spireTD, Path: spireParent}, SpiffeId: &types.SPIFFEID{TrustDomain: spireTD, Path: "/otterize/namespace/" + victims[0] + "/service/legacy"},
			Selectors: []*types.Selector{{Type: "k8s", Value: "ns:" + victims[0]}, {Type: "k8s", Value: "sa:legacy"}}, DnsNames: []string{"legacy." + victims[0]}, X509SvidTtl: 3600},
		{Id: "intentguard-adv-other.0123456789abcdef", ParentId: &types.SPIFFEID{TrustDomain: spireTD, Path: spireParent}, SpiffeId: &types.SPIFFEID{TrustDomain: spireTD, Path: "/otterize/namespace/" + victims[1] + "/service/api1"},
			Selectors: []*types.Selector{{Type: "k8s", Value: "ns:" + victims[1]}, {Type: "k8s", Value: "sa:default"}}, DnsNames: []string{"api1." + victims[1]}, X509SvidTtl: 7200},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetResults() {
		if r.GetStatus().GetCode() != 0 {
			t.Fatalf("creating a foreign entry: %v", r.GetStatus())
		}
		foreignIDs[r.GetEntry().GetId()] = true
	}

	cfg := credentials.Defaults()
	cfg.Namespace = opNS
	cfg.MetricsAddr, cfg.ProbeAddr, cfg.InProcess = "0", "0", true
	cfg.Backend = credentials.BackendSPIRE
	cfg.SPIRESocket = srv.Socket
	cfg.TrustDomain = spireTD
	cfg.SPIREParentID = "spiffe://" + spireTD + spireParent
	cfg.ClusterName = "adv"
	runCounted(t, local.Config, "credentials operator", func(ctx context.Context, rc *rest.Config) (ctrl.Manager, error) {
		return credentials.New(ctx, rc, cfg)
	})

	list := func() ([]spireEntry, error) {
		var out []spireEntry
		token := ""
		for {
			r, err := raw.ListEntries(ctx, &entryv1.ListEntriesRequest{PageToken: token})
			if err != nil {
				return nil, err
			}
			for _, e := range r.GetEntries() {
				out = append(out, entryOf(e))
			}
			if token = r.GetNextPageToken(); token == "" {
				return out, nil
			}
		}
	}

	// The victims: two Deployments each, with DNS names of their own namespace.
	type victimSecret struct{ ns, name, rv string }
	var secrets []victimSecret
	var victimNames []string
	victimIDs := map[string]bool{}
	for i, ns := range victims {
		for _, name := range []string{fmt.Sprintf("api%d", i), fmt.Sprintf("db%d", i)} {
			own := []string{"svc-" + name + "." + ns + ".svc.cluster.local", "svc-" + name + "." + ns}
			victimNames = append(victimNames, own...)
			victimNames = append(victimNames, name+"."+ns)
			env.Deployment(t, ns, name, 1, map[string]string{
				credentials.Prefix + credentials.AnnSecretName: name + "-tls",
				credentials.Prefix + credentials.AnnDNSNames:   strings.Join(own, ","),
			}, nil)
			victimIDs[spiffeOf(ns, name)] = true
			log = append(log, fmt.Sprintf("victim %s/%s holds %s", ns, name, strings.Join(own, ",")))
		}
	}
	victimNames = append(victimNames, "*."+victims[0]+".svc.cluster.local", "legacy."+victims[0])
	wider := []string{"*.com", "*.svc.cluster.local", "kafka.kafka.svc.cluster.local", tenant + "." + victims[1]}

	// The baseline: every victim has its entry, and the foreign entries are there.
	baseline := map[string]spireEntry{}
	settled := func() (bool, error) {
		all, err := list()
		if err != nil {
			return false, err
		}
		baseline = map[string]spireEntry{}
		covered := map[string]bool{}
		for _, e := range all {
			if victimIDs[e.SPIFFEID] && strings.HasPrefix(e.ID, spirePrefix) || foreignIDs[e.ID] {
				baseline[e.ID] = e
				covered[e.SPIFFEID] = true
			}
		}
		for id := range victimIDs {
			if !covered[id] {
				return false, nil
			}
		}
		for id := range foreignIDs {
			if _, ok := baseline[id]; !ok {
				return false, fmt.Errorf("foreign entry %s is gone", id)
			}
		}
		return true, nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ok, err := settled()
		if ok {
			break
		}
		if err != nil || time.Now().After(deadline) {
			fail(0, "within 30s, a victim has no entry or a foreign entry went (%v)", err)
		}
	}
	for i, ns := range victims {
		for _, name := range []string{fmt.Sprintf("api%d", i), fmt.Sprintf("db%d", i)} {
			s := waitSecret(t, ns, name+"-tls")
			secrets = append(secrets, victimSecret{ns, s.Name, s.ResourceVersion})
		}
	}
	for _, id := range sortedKeysOf(baseline) {
		log = append(log, "baseline entry "+baseline[id].String())
	}

	var pods []tenantPod
	// revisions holds, during the hold after settling, each entry's revision when the
	// hold began: an entry updated again and again is a write loop.
	var revisions map[string]int64
	problem := func() string {
		all, err := list()
		if err != nil {
			return fmt.Sprintf("listing SPIRE entries: %v", err)
		}
		for _, e := range all {
			if was, ok := revisions[e.ID]; ok && was != e.Revision {
				return fmt.Sprintf("entry %s was updated after settling (revision %d, was %d): a write loop", e, e.Revision, was)
			}
		}
		now := map[string]spireEntry{}
		for _, e := range all {
			now[e.ID] = e
		}
		for id, base := range baseline {
			cur, ok := now[id]
			if !ok {
				return fmt.Sprintf("entry %s was deleted", base)
			}
			if cur.String() != base.String() {
				return fmt.Sprintf("entry changed:\nwas %s\nnow %s", base, cur)
			}
		}
		// The tenant's entries: the pod that speaks for an identity is its newest, the first
		// by name among pods created in the same second (creation times have one-second
		// steps). Its entry carries exactly the names that pod asked for, and there is none
		// when that pod asked for a name outside its namespace.
		var live corev1.PodList
		if err := kube.List(ctx, &live, client.InNamespace(tenant)); err != nil {
			return fmt.Sprintf("listing the tenant's pods: %v", err)
		}
		created := map[string]metav1.Time{}
		for _, lp := range live.Items {
			created[lp.Name] = lp.CreationTimestamp
		}
		newest := map[string]tenantPod{}
		for _, p := range pods {
			cur, ok := newest[p.identity]
			tp, tc := created[p.name], created[cur.name]
			if !ok || tc.Before(&tp) || (tc.Equal(&tp) && p.name < cur.name) {
				newest[p.identity] = p
			}
		}
		seen := map[string]bool{}
		for _, e := range all {
			if _, ok := baseline[e.ID]; ok {
				continue
			}
			if !strings.HasPrefix(e.ID, spirePrefix) {
				return fmt.Sprintf("an entry without this install's prefix appeared: %s", e)
			}
			if !strings.HasPrefix(e.SPIFFEID, "spiffe://"+spireTD+"/otterize/namespace/"+tenant+"/") {
				return fmt.Sprintf("an entry for another namespace than the tenant's appeared: %s", e)
			}
			if !slices.Contains(e.Selectors, "k8s:ns:"+tenant) {
				return fmt.Sprintf("a tenant entry selects pods of another namespace: %s", e)
			}
			for _, n := range e.DNSNames {
				if !inNamespaceScope(n, tenant) {
					return fmt.Sprintf("a tenant entry carries the DNS name %q outside its namespace: %s", n, e)
				}
			}
			name := strings.TrimPrefix(e.SPIFFEID, spiffeOf(tenant, ""))
			p, ok := newest[name]
			if !ok {
				return fmt.Sprintf("an entry for no live tenant pod: %s", e)
			}
			if len(p.foreign) > 0 {
				return fmt.Sprintf("tenant pod %s, which speaks for %s, asked for %v outside its namespace and the identity has an entry: %s", p.name, name, p.foreign, e)
			}
			want := append([]string{name + "." + tenant}, p.names...)
			if got := slices.Sorted(slices.Values(e.DNSNames)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
				return fmt.Sprintf("the entry of %s has the names %v, not those of its newest pod %s, %v", name, e.DNSNames, p.name, want)
			}
			seen[name] = true
		}
		for id, p := range newest {
			if len(p.foreign) == 0 && !p.claimed && !seen[id] {
				return fmt.Sprintf("tenant pod %s asked only for names of its namespace and has no entry", p.name)
			}
		}
		for _, v := range secrets {
			var s corev1.Secret
			if err := kube.Get(ctx, client.ObjectKey{Namespace: v.ns, Name: v.name}, &s); err != nil || s.ResourceVersion != v.rv {
				return fmt.Sprintf("victim Secret %s/%s was written or deleted (err %v, resourceVersion %s, was %s)", v.ns, v.name, err, s.ResourceVersion, v.rv)
			}
		}
		return ""
	}
	check := func(step int) {
		p := problem()
		for deadline := time.Now().Add(20 * time.Second); p != "" && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			p = problem()
		}
		if p != "" {
			fail(step, "not settled after 20s: %s", p)
		}
		all, err := list()
		if err != nil {
			fail(step, "listing SPIRE entries: %v", err)
		}
		revisions = map[string]int64{}
		for _, e := range all {
			revisions[e.ID] = e.Revision
		}
		for hold := time.Now().Add(time.Second); time.Now().Before(hold); {
			time.Sleep(250 * time.Millisecond)
			if p := problem(); p != "" {
				fail(step, "after settling: %s", p)
			}
		}
		revisions = nil
	}
	check(0)

	refused, issued := 0, 0
	claimedNames := map[string]bool{}
	for step := 1; step <= steps; step++ {
		if len(pods) > 0 && rnd.Intn(4) == 0 {
			i := rnd.Intn(len(pods))
			deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: pods[i].name}})
			suite.WaitFor(t, "pod "+pods[i].name+" to go", 30*time.Second, func() (bool, error) {
				err := kube.Get(ctx, client.ObjectKey{Namespace: tenant, Name: pods[i].name}, &corev1.Pod{})
				return client.IgnoreNotFound(err) == nil && err != nil, nil
			})
			log = append(log, fmt.Sprintf("step %d: tenant deletes pod %s", step, pods[i].name))
			pods = append(pods[:i], pods[i+1:]...)
			check(step)
			continue
		}
		p := tenantPod{name: fmt.Sprintf("req%d", step)}
		p.identity = p.name
		svc := fmt.Sprintf("s%d", step)
		var names []string
		for _, n := range []string{svc + "." + tenant, svc + "b." + tenant + ".svc", "*." + svc + "c." + tenant + ".svc.cluster.local"} {
			if rnd.Intn(2) == 0 {
				names = append(names, n)
			}
		}
		if step == 1 || rnd.Intn(2) == 0 {
			bad := victimNames
			if rnd.Intn(3) == 0 {
				bad = wider
			}
			n := bad[rnd.Intn(len(bad))]
			names = append(names, n)
			p.foreign = append(p.foreign, n)
		}
		ann := map[string]string{credentials.Prefix + credentials.AnnSecretName: p.name + "-tls"}
		if len(names) > 0 {
			ann[credentials.Prefix+credentials.AnnDNSNames] = strings.Join(names, ",")
		}
		if rnd.Intn(2) == 0 {
			// A victim's workload name (or the hand-made entry's), or one that spells a
			// victim namespace in it: the identity is then that name in the tenant's
			// namespace, or nothing.
			claims := []string{"api0", "db1", "legacy", "api1." + victims[1], "API0", "api0/x"}
			p.identity, p.claimed = claims[rnd.Intn(len(claims))], true
			ann[identity.WorkloadNameAnnotation] = p.identity
			claimedNames[p.identity] = true
		}
		p.names = names
		barePod(t, tenant, p.name, map[string]string{"app": p.name}, ann)
		pods = append(pods, p)
		if len(p.foreign) > 0 {
			refused++
		} else {
			issued++
		}
		log = append(log, fmt.Sprintf("step %d: tenant pod %s (identity %s): %v", step, p.name, p.identity, ann))
		check(step)
	}
	t.Logf("%d steps: %d tenant requests within the namespace, %d naming other namespaces, names claimed %v; %d victim and %d foreign entries unchanged",
		steps, issued, refused, sortedKeysOf(claimedNames), len(victimIDs), len(foreignIDs))
}
