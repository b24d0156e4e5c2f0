// Package webhook embeds the ValidatingWebhookConfiguration that controller-gen generates
// here from the markers in internal/webhook.
package webhook

import _ "embed"

// Manifests is the generated ValidatingWebhookConfiguration.
//
//go:embed manifests.yaml
var Manifests []byte
