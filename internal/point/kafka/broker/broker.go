// Package broker is the thin adapter between the Kafka enforcement point and a Kafka
// broker: it lists, creates and deletes ACLs in batched Kafka-protocol requests over one
// long-lived client, so the rest of the code never sees the wire types.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/intentguard/intentguard/internal/point/kafka/acl"
)

// DefaultBatch is the number of ACLs per create or delete request: far below any broker's
// request size limit, and few requests for thousands of ACLs.
const DefaultBatch = 1000

// Config says how to reach a broker.
type Config struct {
	// Addr is the bootstrap address, host:port.
	Addr string
	// TLS, when set, connects over TLS.
	TLS *tls.Config
	// SASL, when set, authenticates with it.
	SASL sasl.Mechanism
	// Hooks observe the client (request counting in tests and benchmarks).
	Hooks []kgo.Hook
	// Batch is the number of ACLs per create or delete request; zero means DefaultBatch.
	Batch int
}

// Client is one broker's admin connection. The underlying client reconnects by itself, so
// one Client lives as long as its broker's configuration does not change.
type Client struct {
	cl        *kgo.Client
	batch     int
	clusterID string
}

// New returns a client for the broker; it connects on the first request.
func New(c Config) (*Client, error) {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("broker address %q: %w", c.Addr, err)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Addr),
		kgo.DialTimeout(5 * time.Second),
		// A broker that is down must fail the reconcile soon, so that status says so and
		// the retry backs off, rather than hang on the client's own retries.
		kgo.RetryTimeout(10 * time.Second),
		kgo.RequestRetries(2),
		kgo.MetadataMinAge(time.Second),
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	if len(c.Hooks) > 0 {
		opts = append(opts, kgo.WithHooks(c.Hooks...))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating a Kafka client for %s: %w", c.Addr, err)
	}
	batch := c.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	return &Client{cl: cl, batch: batch}, nil
}

// Close closes the connections.
func (c *Client) Close() { c.cl.Close() }

// SASLMechanism returns the franz-go mechanism for a mechanism name.
func SASLMechanism(mechanism, user, pass string) (sasl.Mechanism, error) {
	switch mechanism {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", mechanism)
}

// TLSConfig builds a client TLS configuration from PEM material. certPEM and keyPEM may
// both be empty (no client certificate); caPEM empty means the system roots.
func TLSConfig(certPEM, keyPEM, caPEM []byte, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("reading the client certificate and key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ClusterID returns the Kafka cluster's ID ("" from brokers too old to tell), asked once
// per client: it tells whether an address still leads to the cluster the owned ACLs are on.
func (c *Client) ClusterID(ctx context.Context) (string, error) {
	if c.clusterID != "" {
		return c.clusterID, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return "", fmt.Errorf("reading the cluster ID: %w", err)
	}
	if resp.ClusterID != nil {
		c.clusterID = *resp.ClusterID
	}
	return c.clusterID, nil
}

// List returns every ACL on the broker, in one request.
func (c *Client) List(ctx context.Context) (acl.Set, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return nil, fmt.Errorf("listing ACLs: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("listing ACLs: %w%s", err, msg(resp.ErrorMessage))
	}
	out := acl.Set{}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			out.Add(acl.ACL{
				Principal: a.Principal, Host: a.Host,
				Resource: resourceFrom(r.ResourceType), Pattern: patternFrom(r.ResourcePatternType), Name: r.ResourceName,
				Operation: operationFrom(a.Operation), Permission: permissionFrom(a.PermissionType),
			})
		}
	}
	return out, nil
}

// Create creates the ACLs in batches and returns those the broker created. On error, the
// ACLs not returned were not created (or their fate is unknown, and a later List tells).
func (c *Client) Create(ctx context.Context, acls []acl.ACL) ([]acl.ACL, error) {
	var created []acl.ACL
	var errs []error
	for start := 0; start < len(acls); start += c.batch {
		batch := acls[start:min(start+c.batch, len(acls))]
		req := kmsg.NewPtrCreateACLsRequest()
		for _, a := range batch {
			w, err := toWire(a)
			if err != nil {
				return created, err
			}
			cr := kmsg.NewCreateACLsRequestCreation()
			cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = w.res, a.Name, w.pat
			cr.Principal, cr.Host, cr.Operation, cr.PermissionType = a.Principal, a.Host, w.op, w.perm
			req.Creations = append(req.Creations, cr)
		}
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return created, fmt.Errorf("creating %d ACLs: %w", len(batch), err)
		}
		if len(resp.Results) != len(batch) {
			return created, fmt.Errorf("creating %d ACLs: the broker answered %d results", len(batch), len(resp.Results))
		}
		for i, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("creating %s: %w%s", batch[i], err, msg(r.ErrorMessage)))
				continue
			}
			created = append(created, batch[i])
		}
	}
	return created, errors.Join(errs...)
}

// Delete deletes exactly the ACLs given, in batches: each filter names every field of one
// ACL, so it matches that ACL and nothing else. It returns the ACLs that are gone.
func (c *Client) Delete(ctx context.Context, acls []acl.ACL) ([]acl.ACL, error) {
	var deleted []acl.ACL
	var errs []error
	for start := 0; start < len(acls); start += c.batch {
		batch := acls[start:min(start+c.batch, len(acls))]
		req := kmsg.NewPtrDeleteACLsRequest()
		for _, a := range batch {
			w, err := toWire(a)
			if err != nil {
				return deleted, err
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			name, principal, host := a.Name, a.Principal, a.Host
			f.ResourceType, f.ResourceName, f.ResourcePatternType = w.res, &name, w.pat
			f.Principal, f.Host, f.Operation, f.PermissionType = &principal, &host, w.op, w.perm
			req.Filters = append(req.Filters, f)
		}
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return deleted, fmt.Errorf("deleting %d ACLs: %w", len(batch), err)
		}
		if len(resp.Results) != len(batch) {
			return deleted, fmt.Errorf("deleting %d ACLs: the broker answered %d results", len(batch), len(resp.Results))
		}
		for i, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w%s", batch[i], err, msg(r.ErrorMessage)))
				continue
			}
			// No match means it was already gone, which is what was asked.
			deleted = append(deleted, batch[i])
		}
	}
	return deleted, errors.Join(errs...)
}

func msg(m *string) string {
	if m == nil || *m == "" {
		return ""
	}
	return ": " + *m
}

type wire struct {
	res  kmsg.ACLResourceType
	pat  kmsg.ACLResourcePatternType
	op   kmsg.ACLOperation
	perm kmsg.ACLPermissionType
}

var (
	resources   = map[acl.ResourceType]kmsg.ACLResourceType{acl.Topic: kmsg.ACLResourceTypeTopic, acl.Group: kmsg.ACLResourceTypeGroup, acl.Cluster: kmsg.ACLResourceTypeCluster}
	patterns    = map[acl.Pattern]kmsg.ACLResourcePatternType{acl.Literal: kmsg.ACLResourcePatternTypeLiteral, acl.Prefixed: kmsg.ACLResourcePatternTypePrefixed}
	permissions = map[acl.Permission]kmsg.ACLPermissionType{acl.Allow: kmsg.ACLPermissionTypeAllow, acl.Deny: kmsg.ACLPermissionTypeDeny}
	operations  = map[acl.Operation]kmsg.ACLOperation{
		acl.All: kmsg.ACLOperationAll, acl.Read: kmsg.ACLOperationRead, acl.Write: kmsg.ACLOperationWrite,
		acl.Create: kmsg.ACLOperationCreate, acl.Delete: kmsg.ACLOperationDelete, acl.Alter: kmsg.ACLOperationAlter,
		acl.Describe: kmsg.ACLOperationDescribe, acl.ClusterAction: kmsg.ACLOperationClusterAction,
		acl.DescribeConfigs: kmsg.ACLOperationDescribeConfigs, acl.AlterConfigs: kmsg.ACLOperationAlterConfigs,
		acl.IdempotentWrite: kmsg.ACLOperationIdempotentWrite,
	}
)

// toWire maps an ACL to wire enums; an ACL read from the broker with a value this package
// does not model (a transactional-id ACL, say) is never desired, so it is never written.
func toWire(a acl.ACL) (wire, error) {
	w := wire{}
	var ok [4]bool
	w.res, ok[0] = resources[a.Resource]
	w.pat, ok[1] = patterns[a.Pattern]
	w.op, ok[2] = operations[a.Operation]
	w.perm, ok[3] = permissions[a.Permission]
	if ok != [4]bool{true, true, true, true} {
		return w, fmt.Errorf("ACL %s has a value the adapter cannot write", a)
	}
	return w, nil
}

func resourceFrom(v kmsg.ACLResourceType) acl.ResourceType {
	for k, w := range resources {
		if w == v {
			return k
		}
	}
	return acl.ResourceType(v.String())
}

func patternFrom(v kmsg.ACLResourcePatternType) acl.Pattern {
	for k, w := range patterns {
		if w == v {
			return k
		}
	}
	return acl.Pattern(v.String())
}

func operationFrom(v kmsg.ACLOperation) acl.Operation {
	for k, w := range operations {
		if w == v {
			return k
		}
	}
	return acl.Operation(v.String())
}

func permissionFrom(v kmsg.ACLPermissionType) acl.Permission {
	for k, w := range permissions {
		if w == v {
			return k
		}
	}
	return acl.Permission(v.String())
}
