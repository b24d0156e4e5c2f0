// Package ownership names the label that marks an object as written by one of the
// project's operators, and the value each operator writes: an operator lists, updates and
// deletes only objects carrying its own value, so the two never touch each other's
// objects, and neither touches anything a user wrote.
package ownership

// Label is the managed-by label on every object an operator of the project created.
const Label = "app.kubernetes.io/managed-by"

// Values of Label, one per operator.
const (
	// IntentsOperator marks the intents operator's NetworkPolicies and Kafka ACL records.
	IntentsOperator = "intentguard"
	// CredentialsOperator marks the credentials operator's Secrets.
	CredentialsOperator = "intentguard-credentials-operator"
)

// Labels returns the label set that marks an object as owned by the operator value names.
func Labels(value string) map[string]string { return map[string]string{Label: value} }
