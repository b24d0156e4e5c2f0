package edges

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	edgesBucket  = []byte("edges")
	agentsBucket = []byte("agents")
)

// Mark names a batch: the agent, its process (by start time) and the batch's number
// within the process.
type Mark struct {
	Agent string
	Boot  time.Time
	Seq   uint64
}

// key is the database key of the mark's process.
func (m Mark) key() string { return m.Agent + "@" + m.Boot.UTC().Format(time.RFC3339Nano) }

// progress is how far a process's batches have been taken.
type progress struct {
	Seq uint64 `json:"seq"`
	// At is when its last batch was taken, by the aggregator's clock.
	At time.Time `json:"at"`
}

// Verdict says what the store made of a batch's mark.
type Verdict int

const (
	// Fresh is a batch not seen before: it is recorded.
	Fresh Verdict = iota
	// Repeat is a batch already recorded (the agent sent it again, not having seen the
	// acknowledgement): it is acknowledged and not counted twice.
	Repeat
)

// Store is the edges in memory, kept in a bbolt database. Record changes memory; Commit
// writes every change made so far in one transaction. Callers that Commit concurrently
// share transactions, so the write rate is bounded by the disk, not by the agents.
type Store struct {
	db *bolt.DB

	mu    sync.Mutex
	edges map[Key]*Edge
	// marks holds each agent process's progress, by Mark.key.
	marks map[string]progress
	// forgotten holds the marks pruned since the last commit.
	forgotten map[string]struct{}
	dirty     map[Key]struct{}
	marked    map[string]struct{}
	strings   map[string]string
	// gen counts Record calls that changed something; committed is the gen last written.
	gen, committed uint64

	commitMu sync.Mutex
}

// Open opens (creating it if needed) the database at path and loads its edges.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening the edge database %s: %w", path, err)
	}
	s := &Store{
		db: db, edges: map[Key]*Edge{}, marks: map[string]progress{}, forgotten: map[string]struct{}{},
		dirty: map[Key]struct{}{}, marked: map[string]struct{}{}, strings: map[string]string{},
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		eb, err := tx.CreateBucketIfNotExists(edgesBucket)
		if err != nil {
			return err
		}
		ab, err := tx.CreateBucketIfNotExists(agentsBucket)
		if err != nil {
			return err
		}
		if err := eb.ForEach(func(_, v []byte) error {
			e := &Edge{}
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decoding an edge: %w", err)
			}
			s.intern(e)
			s.edges[e.Key] = e
			return nil
		}); err != nil {
			return err
		}
		return ab.ForEach(func(k, v []byte) error {
			var m progress
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decoding the mark of agent %q: %w", k, err)
			}
			s.marks[string(k)] = m
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("loading the edge database: %w", err)
	}
	return nil
}

// intern makes the edge's strings share memory with equal ones of other edges: 100,000
// edges name a few thousand workloads, pods and nodes.
func (s *Store) intern(e *Edge) {
	for _, p := range []*Peer{&e.Client, &e.Server} {
		p.Namespace, p.Name, p.WorkloadKind = s.str(p.Namespace), s.str(p.Name), s.str(p.WorkloadKind)
	}
	e.Protocol = s.str(e.Protocol)
	for _, l := range [][]string{e.DNSNames, e.ClientPods, e.ServerPods, e.Agents} {
		for i := range l {
			l[i] = s.str(l[i])
		}
	}
}

func (s *Store) str(v string) string {
	if v == "" {
		return ""
	}
	if w, ok := s.strings[v]; ok {
		return w
	}
	s.strings[v] = v
	return v
}

// Record takes a batch: its sightings are added unless the mark says the batch was
// recorded before. now is when it is taken. The change is in memory until Commit.
func (s *Store) Record(mark Mark, now time.Time, sightings []Sighting) Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mark.key()
	if last, ok := s.marks[k]; ok && mark.Seq <= last.Seq {
		// Two deliveries of one batch raced past Seen.
		return Repeat
	}
	s.marks[k] = progress{Seq: mark.Seq, At: now}
	s.marked[k] = struct{}{}
	delete(s.forgotten, k)
	for _, sg := range sightings {
		e := s.edges[sg.Key]
		if e == nil {
			e = &Edge{Key: sg.Key}
			s.intern(e)
			s.edges[sg.Key] = e
		}
		sg.DNSName, sg.ClientPod, sg.ServerPod, sg.Agent = s.str(sg.DNSName), s.str(sg.ClientPod), s.str(sg.ServerPod), s.str(sg.Agent)
		e.add(sg)
		s.dirty[sg.Key] = struct{}{}
	}
	s.gen++
	return Fresh
}

// Seen reports whether the batch of mark was recorded.
func (s *Store) Seen(mark Mark) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.marks[mark.key()]
	return ok && mark.Seq <= last.Seq
}

// ForgetMarks forgets the progress of agent processes not heard from since cutoff, so
// that marks do not pile up with agent restarts. Call it with a cutoff older than the
// oldest observation the aggregator still attributes: a batch sent again after that
// holds nothing that could be counted twice.
func (s *Store) ForgetMarks(cutoff time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.marks {
		if p.At.Before(cutoff) {
			delete(s.marks, k)
			delete(s.marked, k)
			s.forgotten[k] = struct{}{}
			s.gen++
		}
	}
}

// Commit writes every change recorded before the call. It returns once a transaction
// holding them is on disk: its own, or a concurrent caller's.
func (s *Store) Commit() error {
	s.mu.Lock()
	want := s.gen
	s.mu.Unlock()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.committed >= want {
		s.mu.Unlock()
		return nil
	}
	gen := s.gen
	edges := make(map[string][]byte, len(s.dirty))
	marks := make(map[string][]byte, len(s.marked))
	for k := range s.dirty {
		if e := s.edges[k]; e != nil {
			edges[string(mustJSON(k))] = mustJSON(e)
		}
	}
	for a := range s.marked {
		marks[a] = mustJSON(s.marks[a])
	}
	dirty, marked, forgotten := s.dirty, s.marked, s.forgotten
	s.dirty, s.marked, s.forgotten = map[Key]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
	s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		eb, ab := tx.Bucket(edgesBucket), tx.Bucket(agentsBucket)
		// In key order: bbolt inserts into a page by shifting what follows it, so random
		// order costs quadratic copying in a large commit.
		for _, k := range slices.Sorted(maps.Keys(edges)) {
			if err := eb.Put([]byte(k), edges[k]); err != nil {
				return err
			}
		}
		for a, v := range marks {
			if err := ab.Put([]byte(a), v); err != nil {
				return err
			}
		}
		for a := range forgotten {
			if err := ab.Delete([]byte(a)); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Put the changes back so that the next commit tries them again.
		for k := range dirty {
			if _, ok := s.edges[k]; ok {
				s.dirty[k] = struct{}{}
			}
		}
		for a := range marked {
			if _, ok := s.marks[a]; ok {
				s.marked[a] = struct{}{}
			}
		}
		for a := range forgotten {
			if _, ok := s.marks[a]; !ok {
				s.forgotten[a] = struct{}{}
			}
		}
		return fmt.Errorf("writing %d edges to the edge database: %w", len(edges), err)
	}
	s.committed = gen
	return nil
}

// ExpireChunk is how many edges one expiry transaction deletes at most: a transaction
// holds its pages in memory until it commits, and batch acknowledgements wait for it.
const ExpireChunk = 1000

// Expire forgets the edges last seen before cutoff, in memory at once and on disk in
// transactions of at most chunk deletions, and returns how many it forgot. An edge seen
// again while Expire runs is recorded anew and kept. Edges a failed deletion left on
// disk come back at the next start and are expired then.
func (s *Store) Expire(cutoff time.Time, chunk int) (int, error) {
	s.mu.Lock()
	var stale []storedKey
	for k, e := range s.edges {
		if e.LastSeen.Before(cutoff) {
			delete(s.edges, k)
			delete(s.dirty, k)
			stale = append(stale, storedKey{k, mustJSON(k)})
		}
	}
	s.mu.Unlock()
	// In key order, for the same reason as Commit's puts.
	slices.SortFunc(stale, func(a, b storedKey) int { return bytes.Compare(a.db, b.db) })
	for rest := stale; len(rest) > 0; {
		n := min(max(chunk, 1), len(rest))
		if err := s.deleteEdges(rest[:n]); err != nil {
			return 0, err
		}
		rest = rest[n:]
	}
	return len(stale), nil
}

// storedKey is an edge's key with its database form.
type storedKey struct {
	key Key
	db  []byte
}

// deleteEdges deletes the stored edges of keys that have not been recorded again since
// they were expired. Holding commitMu orders the deletion before any commit that could
// write such an edge anew.
func (s *Store) deleteEdges(keys []storedKey) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	gone := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if _, back := s.edges[k.key]; !back {
			gone = append(gone, k.db)
		}
	}
	s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		eb := tx.Bucket(edgesBucket)
		for _, k := range gone {
			if err := eb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting %d expired edges from the edge database: %w", len(gone), err)
	}
	return nil
}

// mustJSON encodes a value whose types cannot fail to encode (strings, numbers, times
// within years 0-9999, which observation times are).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err))
	}
	return b
}

// Edges returns a copy of every edge, ordered by client, server and port.
func (s *Store) Edges() []Edge {
	s.mu.Lock()
	out := make([]Edge, 0, len(s.edges))
	for _, e := range s.edges {
		out = append(out, e.clone())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Edge) int { return compareKeys(a.Key, b.Key) })
	return out
}

// Len returns the number of edges.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.edges)
}

// Close commits what is left and closes the database.
func (s *Store) Close() error {
	cerr := s.Commit()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing the edge database: %w", err)
	}
	return cerr
}
