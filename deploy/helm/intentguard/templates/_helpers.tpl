{{/* Chart name, at most 63 characters. */}}
{{- define "intentguard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name, with the chart name unless it already contains it. */}}
{{- define "intentguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "intentguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "intentguard.labels" -}}
helm.sh/chart: {{ include "intentguard.chart" . }}
{{ include "intentguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "intentguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "intentguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: intents-operator
{{- end }}

{{- define "intentguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "intentguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election is on when asked for, and always with more than one replica. */}}
{{- define "intentguard.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* Name of the webhook Service, its Secret and the ValidatingWebhookConfiguration. */}}
{{- define "intentguard.webhookName" -}}
{{- printf "%s-webhook" (include "intentguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The webhook's CA bundle: cert-manager injects it, else the chart's self-signed CA. */}}
{{- define "intentguard.caBundle" -}}
{{- if not .Values.webhook.certManager.enabled }}{{ index (include "intentguard.webhookCert" . | fromYaml) "ca.crt" }}{{ end }}
{{- end }}

{{/*
The webhook's serving certificate and its CA, as a YAML map of tls.crt, tls.key and
ca.crt. An installed release keeps the Secret it has (so every replica and every
upgrade serves the same certificate, and the caBundle never changes under a running
pod); a new release gets a CA and a certificate valid for 10 years.
*/}}
{{- define "intentguard.webhookCert" -}}
{{- $name := include "intentguard.webhookName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- if and $existing (index $existing.data "ca.crt") }}
tls.crt: {{ index $existing.data "tls.crt" | b64dec | quote }}
tls.key: {{ index $existing.data "tls.key" | b64dec | quote }}
ca.crt: {{ index $existing.data "ca.crt" | b64dec | b64enc | quote }}
{{- else }}
{{- if not (hasKey .Values.webhook "generated") }}
{{- $ca := genCA (printf "%s-ca" $name) 3650 }}
{{- $dns := list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) }}
{{- $cert := genSignedCert $name nil $dns 3650 $ca }}
{{- $_ := set .Values.webhook "generated" (dict "tls.crt" $cert.Cert "tls.key" $cert.Key "ca.crt" ($ca.Cert | b64enc)) }}
{{- end }}
{{- toYaml (index .Values.webhook "generated") }}
{{- end }}
{{- end }}
