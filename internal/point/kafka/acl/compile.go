package acl

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/principal"
)

// Placeholders a principal template or consumer-group name may contain.
const (
	PlaceholderDN        = "$(dn)"
	PlaceholderWorkload  = "$(workload)"
	PlaceholderNamespace = "$(namespace)"
)

// DefaultPrincipalTemplate is the upstream-compatible principal: the client certificate's DN.
const DefaultPrincipalTemplate = "User:" + PlaceholderDN

// DefaultConsumerGroup is the consumer group a consuming client gets when the server
// config names none: one group per client, which no other client's name can match.
const DefaultConsumerGroup = PlaceholderWorkload + "." + PlaceholderNamespace

// topicName is a Kafka topic name, optionally followed by "*" (a prefix).
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}\*?$`)

// groupName is what a rendered consumer group may be: no control characters.
var groupName = regexp.MustCompile(`^[^\x00-\x1f*]{1,255}$`)

// Server is what the compiler needs to know about one broker.
type Server struct {
	// Ref is the broker workload as kafka targets name it.
	Ref intent.Ref
	// Topics are the server-level rules.
	Topics []v2beta1.KafkaServerTopic
	// PrincipalTemplate renders a client's principal; empty means DefaultPrincipalTemplate.
	PrincipalTemplate string
	// Organization is the O= of client certificates, used by $(dn).
	Organization string
	// GroupName is the consumer group (or prefix) of consuming clients; empty means
	// DefaultConsumerGroup.
	GroupName string
	// GroupPrefix makes GroupName a prefix.
	GroupPrefix bool
}

// ServerOf reads a KafkaServerConfig.
func ServerOf(ksc *v2beta1.KafkaServerConfig) Server {
	return Server{
		Ref:               intent.Ref{Namespace: ksc.Namespace, Name: ksc.Spec.Workload.Name, Kind: ksc.Spec.Workload.Kind},
		Topics:            ksc.Spec.Topics,
		PrincipalTemplate: ksc.Spec.Principal.Template,
		Organization:      ksc.Spec.Principal.Organization,
		GroupName:         ksc.Spec.ConsumerGroup.Name,
		GroupPrefix:       ksc.Spec.ConsumerGroup.Pattern == v2beta1.KafkaTopicPrefix,
	}
}

// Targets reports whether a kafka target of ci names the server.
func (s Server) Targets(ci *v2beta1.ClientIntents) bool {
	for _, t := range ci.Spec.Targets {
		if t.Kafka != nil && s.named(t.Kafka.Name, ci.Namespace) {
			return true
		}
	}
	return false
}

func (s Server) named(target, clientNamespace string) bool {
	name, ns := intent.SplitName(target, clientNamespace)
	return name == s.Ref.Name && ns == s.Ref.Namespace
}

// namespaceChars are the characters a namespace name (an RFC 1123 label) may hold.
const namespaceChars = "abcdefghijklmnopqrstuvwxyz0123456789-"

// CheckPrincipalTemplate refuses a template that could render two clients alike. With
// $(dn) the certificate subject tells them apart. Otherwise $(workload) and $(namespace)
// must each appear once, separated by text holding a character no namespace name holds
// (".", "/", ":", "@", ...): the namespace, made of namespace characters only, then ends
// (or starts) at a position the rendered text fixes, whatever the workload name holds.
// The CRD's CEL rule on spec.principal.template is the same test.
func CheckPrincipalTemplate(tmpl string) error {
	if strings.Contains(tmpl, PlaceholderDN) {
		return nil
	}
	if strings.Count(tmpl, PlaceholderWorkload) != 1 || strings.Count(tmpl, PlaceholderNamespace) != 1 {
		return fmt.Errorf("principal template %q would give different clients the same principal: it needs %s, or %s and %s once each", tmpl, PlaceholderDN, PlaceholderWorkload, PlaceholderNamespace)
	}
	w, n := strings.Index(tmpl, PlaceholderWorkload), strings.Index(tmpl, PlaceholderNamespace)
	var between string
	if w < n {
		between = tmpl[w+len(PlaceholderWorkload) : n]
	} else {
		between = tmpl[n+len(PlaceholderNamespace) : w]
	}
	if strings.Trim(between, namespaceChars) == "" {
		return fmt.Errorf("principal template %q is ambiguous: between %s and %s put a character that cannot occur in a namespace name, such as '.', '/', ':' or '@' (with %q, namespace a-b and workload c render like namespace a and workload b-c)", tmpl, PlaceholderWorkload, PlaceholderNamespace, between)
	}
	return nil
}

// Principal renders the principal of a client workload.
func (s Server) Principal(client intent.Ref) (string, error) {
	tmpl := s.PrincipalTemplate
	if tmpl == "" {
		tmpl = DefaultPrincipalTemplate
	}
	if !strings.HasPrefix(tmpl, "User:") {
		return "", fmt.Errorf("principal template %q does not start with User:", tmpl)
	}
	if err := CheckPrincipalTemplate(tmpl); err != nil {
		return "", err
	}
	out := tmpl
	if strings.Contains(out, PlaceholderDN) {
		dn, err := principal.DN(principal.Subject(identity.Identity{Namespace: client.Namespace, Name: client.Name}, s.Organization))
		if err != nil {
			return "", fmt.Errorf("rendering the certificate DN of %s: %w", client, err)
		}
		out = strings.ReplaceAll(out, PlaceholderDN, dn)
	}
	out = strings.ReplaceAll(out, PlaceholderWorkload, client.Name)
	out = strings.ReplaceAll(out, PlaceholderNamespace, client.Namespace)
	if strings.Contains(out, "*") || out == "User:" {
		return "", fmt.Errorf("principal %q of %s would match other principals", out, client)
	}
	return out, nil
}

// CheckConsumerGroup refuses a consumer group template that could give one client a
// group of a client in another namespace. A name without placeholders is one group for
// every client, the broker owner's explicit choice (as "*" is). Otherwise $(workload) and
// $(namespace) must each appear once with a character no namespace or workload name holds
// between them, as in a principal template; a prefix must also hold such a character
// after the last placeholder, or "$(workload).$(namespace)" as a prefix would give the
// client web of namespace shop every group of web in namespace shop-eu. The CRD's CEL
// rule on spec.consumerGroup is the same test.
func CheckConsumerGroup(name string, prefix bool) error {
	w, n := strings.Count(name, PlaceholderWorkload), strings.Count(name, PlaceholderNamespace)
	if w == 0 && n == 0 {
		return nil
	}
	if w != 1 || n != 1 {
		return fmt.Errorf("consumer group %q would give clients of different namespaces the same groups: it needs %s and %s once each, or neither", name, PlaceholderWorkload, PlaceholderNamespace)
	}
	first, last := strings.Index(name, PlaceholderWorkload), strings.Index(name, PlaceholderNamespace)
	firstLen, lastLen := len(PlaceholderWorkload), len(PlaceholderNamespace)
	if last < first {
		first, last, firstLen, lastLen = last, first, lastLen, firstLen
	}
	if strings.Trim(name[first+firstLen:last], namespaceChars) == "" {
		return fmt.Errorf("consumer group %q is ambiguous: between %s and %s put a character that cannot occur in a namespace or workload name, such as '.', '_' or ':'", name, PlaceholderWorkload, PlaceholderNamespace)
	}
	if prefix && strings.Trim(name[last+lastLen:], namespaceChars) == "" {
		return fmt.Errorf("consumer group prefix %q would also match the groups of other clients (web in namespace shop would get those of web in shop-eu): end it with a character that cannot occur in a namespace or workload name, such as %q", name, name+".")
	}
	return nil
}

// group renders the consumer group ACL resource of a client.
func (s Server) group(client intent.Ref) (string, Pattern, error) {
	name := s.GroupName
	if name == "" {
		name = DefaultConsumerGroup
	}
	if err := CheckConsumerGroup(name, s.GroupPrefix); err != nil {
		return "", "", err
	}
	name = strings.ReplaceAll(name, PlaceholderWorkload, client.Name)
	name = strings.ReplaceAll(name, PlaceholderNamespace, client.Namespace)
	if name == "*" && !s.GroupPrefix {
		return name, Literal, nil
	}
	if !groupName.MatchString(name) {
		return "", "", fmt.Errorf("consumer group %q of %s is not a group name", name, client)
	}
	if s.GroupPrefix {
		return name, Prefixed, nil
	}
	return name, Literal, nil
}

// IntentsResult is what one ClientIntents contributes to a broker's ACLs.
type IntentsResult struct {
	// Principal is the client's principal on this broker.
	Principal string
	// ACLs is the number of ACLs its targets call for.
	ACLs int
	// Err says why the intents contribute nothing new (the ACLs the client already has
	// are kept as they are).
	Err error
}

// Result is a broker's desired ACLs.
type Result struct {
	// ACLs is the exact set the intents and topic rules call for.
	ACLs Set
	// Intents holds, per ClientIntents that targets the broker, what it contributes.
	Intents map[types.NamespacedName]IntentsResult
	// Frozen are principals with invalid intents: whatever this project owns for them is
	// kept, so one bad edit neither widens nor cuts the client's access.
	Frozen map[string]bool
}

// Desired returns the set to enforce given the owned ACLs: the compiled ACLs plus the
// owned ACLs of frozen principals.
func (r Result) Desired(owned Set) Set {
	out := make(Set, len(r.ACLs))
	for a := range r.ACLs {
		out.Add(a)
	}
	for a := range owned {
		if r.Frozen[a.Principal] {
			out.Add(a)
		}
	}
	return out
}

// Compile returns the ACLs the broker must hold for the server's topic rules and the
// intents that target it (intents targeting other servers are ignored). An error means the
// server config itself cannot be compiled, and nothing may be changed on the broker.
func Compile(s Server, intents []v2beta1.ClientIntents) (Result, error) {
	r := Result{ACLs: Set{}, Intents: map[types.NamespacedName]IntentsResult{}, Frozen: map[string]bool{}}
	for _, t := range s.Topics {
		if err := serverTopic(r.ACLs, t); err != nil {
			return Result{}, err
		}
	}
	for i := range intents {
		ci := &intents[i]
		if !s.Targets(ci) || !ci.DeletionTimestamp.IsZero() {
			continue
		}
		key := types.NamespacedName{Namespace: ci.Namespace, Name: ci.Name}
		client := intent.Client(ci)
		p, err := s.Principal(client)
		if err != nil {
			r.Intents[key] = IntentsResult{Err: err}
			continue
		}
		acls := Set{}
		err = s.clientACLs(acls, p, client, ci)
		if err != nil {
			r.Intents[key] = IntentsResult{Principal: p, Err: err}
			r.Frozen[p] = true
			continue
		}
		r.Intents[key] = IntentsResult{Principal: p, ACLs: len(acls)}
		for a := range acls {
			r.ACLs.Add(a)
		}
	}
	// A principal frozen by one bad ClientIntents is frozen for all of them: its ACLs
	// come from the owned set, not from a mix. Its valid twins then are not what the
	// broker holds, and say which ClientIntents holds them back.
	for a := range r.ACLs {
		if r.Frozen[a.Principal] {
			delete(r.ACLs, a)
		}
	}
	frozenBy := map[string][]string{}
	for key, res := range r.Intents {
		if res.Err != nil && r.Frozen[res.Principal] {
			frozenBy[res.Principal] = append(frozenBy[res.Principal], key.String())
		}
	}
	for key, res := range r.Intents {
		if res.Err == nil && r.Frozen[res.Principal] {
			slices.Sort(frozenBy[res.Principal])
			res.Err = fmt.Errorf("principal %s keeps the ACLs it had: ClientIntents %s for the same principal is invalid", res.Principal, strings.Join(frozenBy[res.Principal], ", "))
			r.Intents[key] = res
		}
	}
	return r, nil
}

func serverTopic(out Set, t v2beta1.KafkaServerTopic) error {
	pattern := Literal
	switch t.Pattern {
	case "", v2beta1.KafkaTopicLiteral:
	case v2beta1.KafkaTopicPrefix:
		pattern = Prefixed
	default:
		return fmt.Errorf("topic rule %q: unknown pattern %q", t.Topic, t.Pattern)
	}
	if t.Topic != "*" && !topicName.MatchString(t.Topic) || strings.HasSuffix(t.Topic, "*") && t.Topic != "*" {
		return fmt.Errorf("topic rule %q: not a Kafka topic name", t.Topic)
	}
	if t.Topic == "*" && pattern == Prefixed {
		return fmt.Errorf("topic rule %q: a prefix cannot be *", t.Topic)
	}
	if t.ClientIdentityRequired {
		out.Add(ACL{Principal: Anonymous, Host: AnyHost, Resource: Topic, Pattern: pattern, Name: t.Topic, Operation: All, Permission: Deny})
	}
	if t.IntentsRequired != nil && !*t.IntentsRequired {
		out.Add(ACL{Principal: Everyone, Host: AnyHost, Resource: Topic, Pattern: pattern, Name: t.Topic, Operation: All, Permission: Allow})
	}
	return nil
}

// topicOps maps an intents operation to the topic operations it needs.
var topicOps = map[v2beta1.KafkaOperation]Operation{
	"all": All, "consume": Read, "produce": Write, "create": Create, "alter": Alter, "delete": Delete,
	"describe": Describe, "DescribeConfigs": DescribeConfigs, "AlterConfigs": AlterConfigs,
}

// clusterOps are the intents operations that apply to the Cluster resource, not topics.
var clusterOps = map[v2beta1.KafkaOperation]Operation{
	"ClusterAction": ClusterAction, "IdempotentWrite": IdempotentWrite,
}

func (s Server) clientACLs(out Set, p string, client intent.Ref, ci *v2beta1.ClientIntents) error {
	var errs []error
	for _, t := range ci.Spec.Targets {
		if t.Kafka == nil || !s.named(t.Kafka.Name, ci.Namespace) {
			continue
		}
		for _, topic := range t.Kafka.Topics {
			name, pattern, err := topicResource(topic.Name)
			if err != nil {
				errs = append(errs, fmt.Errorf("target %s: %w", t.Kafka.Name, err))
				continue
			}
			for _, op := range topic.Operations {
				if cop, ok := clusterOps[op]; ok {
					out.Add(ACL{Principal: p, Host: AnyHost, Resource: Cluster, Pattern: Literal, Name: ClusterName, Operation: cop, Permission: Allow})
					continue
				}
				top, ok := topicOps[op]
				if !ok {
					errs = append(errs, fmt.Errorf("target %s, topic %q: unknown operation %q", t.Kafka.Name, topic.Name, op))
					continue
				}
				out.Add(ACL{Principal: p, Host: AnyHost, Resource: Topic, Pattern: pattern, Name: name, Operation: top, Permission: Allow})
				if op == "consume" || op == "all" {
					g, gp, err := s.group(client)
					if err != nil {
						errs = append(errs, fmt.Errorf("target %s: %w", t.Kafka.Name, err))
						continue
					}
					out.Add(ACL{Principal: p, Host: AnyHost, Resource: Group, Pattern: gp, Name: g, Operation: Read, Permission: Allow})
				}
			}
		}
	}
	return errors.Join(errs...)
}

// topicResource reads an intents topic name: "*" is every topic, "name*" a prefix.
func topicResource(name string) (string, Pattern, error) {
	if name == "*" {
		return "*", Literal, nil
	}
	if !topicName.MatchString(name) {
		return "", "", fmt.Errorf("topic %q is not a Kafka topic name (letters, digits, '.', '_', '-'), optionally ending in * for a prefix", name)
	}
	if p, ok := strings.CutSuffix(name, "*"); ok {
		return p, Prefixed, nil
	}
	return name, Literal, nil
}
