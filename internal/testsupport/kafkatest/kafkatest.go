// Package kafkatest runs an in-process Kafka-protocol broker (franz-go's kfake) that
// authenticates clients with SASL and enforces ACLs, and acts as real Kafka clients
// against it. Tests, the Kafka benchmark and the Kafka demo share it.
package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

const (
	// AdminUser is the broker's superuser, the identity the operator connects with.
	AdminUser = "intentguard-admin"
	// AdminPassword is AdminUser's password.
	AdminPassword = "admin-secret"
	// ClientPassword is the password of every client user.
	ClientPassword = "client-secret"
	// Mechanism is the SASL mechanism of every user: PLAIN carries any user name as is,
	// including distinguished names with commas and equal signs.
	Mechanism = "PLAIN"
)

// Options configure a broker.
type Options struct {
	// Users are client user names (the part after "User:" of their principals).
	Users []string
	// Topics are created at start, with one partition each.
	Topics []string
	// Port is the listening port; zero picks one. A restarted broker keeps its port.
	Port int
	// DataDir persists topics, records and ACLs across restarts.
	DataDir string
	// TLS, when set, serves TLS with this configuration.
	TLS *tls.Config
	// AdminMechanism is the superuser's SASL mechanism; empty means Mechanism.
	AdminMechanism string
	// ClusterID names the cluster; empty means kfake's default.
	ClusterID string
}

// Broker is a running broker.
type Broker struct {
	*kfake.Cluster
	// Addr is the broker's address.
	Addr string
}

// Start runs a one-node cluster with SASL and ACLs on.
func Start(o Options) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.Port),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser(or(o.AdminMechanism, Mechanism), AdminUser, AdminPassword),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	for _, u := range o.Users {
		opts = append(opts, kfake.User(Mechanism, u, ClientPassword))
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, o.Topics...))
	}
	if o.ClusterID != "" {
		opts = append(opts, kfake.ClusterID(o.ClusterID))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if o.TLS != nil {
		opts = append(opts, kfake.TLS(o.TLS))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the in-process Kafka broker: %w", err)
	}
	return &Broker{Cluster: c, Addr: c.ListenAddrs()[0]}, nil
}

// Client returns a Kafka client authenticated as user (PLAIN), with extra options.
func (b *Broker) Client(user, password string, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(b.Addr),
		kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(2 * time.Second),
	}, extra...)
	return kgo.NewClient(opts...)
}

// Denied reports whether err is the broker refusing an operation for lack of ACLs: a
// topic, a consumer group, or (for an idempotent producer allowed to write nowhere) the
// cluster.
func Denied(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// Produce writes one record to topic as user.
func (b *Broker) Produce(ctx context.Context, user, topic, value string) error {
	cl, err := b.Client(user, ClientPassword, kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr()
}

// Consume reads topic from the start as user, in consumer group group, until a record
// with value arrives (nil) or the broker refuses (its error).
func (b *Broker) Consume(ctx context.Context, user, topic, group, value string) error {
	cl, err := b.Client(user, ClientPassword,
		kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consuming %s as %s: no record %q before the deadline", topic, user, value)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return fe.Err
			}
		}
		for _, r := range fs.Records() {
			if string(r.Value) == value {
				return nil
			}
		}
	}
}

// Counts are the ACL requests a broker received and the ACLs they carried.
type Counts struct {
	Describe, Create, Delete       int
	CreatedCarried, DeletedCarried int
}

// String renders the counts.
func (c Counts) String() string {
	return fmt.Sprintf("%d list, %d create (%d ACLs), %d delete (%d ACLs)", c.Describe, c.Create, c.CreatedCarried, c.Delete, c.DeletedCarried)
}

// Requests counts, at the broker, the ACL requests it receives.
type Requests struct {
	mu sync.Mutex
	c  Counts
}

// CountRequests starts counting the broker's ACL requests.
func (b *Broker) CountRequests() *Requests {
	r := &Requests{}
	b.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.KeepControl()
		r.mu.Lock()
		defer r.mu.Unlock()
		switch q := req.(type) {
		case *kmsg.DescribeACLsRequest:
			r.c.Describe++
		case *kmsg.CreateACLsRequest:
			r.c.Create++
			r.c.CreatedCarried += len(q.Creations)
		case *kmsg.DeleteACLsRequest:
			r.c.Delete++
			r.c.DeletedCarried += len(q.Filters)
		}
		return nil, nil, false
	})
	return r
}

// Take returns the counts so far and resets them.
func (r *Requests) Take() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.c
	r.c = Counts{}
	return out
}

// Peek returns the counts so far.
func (r *Requests) Peek() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
