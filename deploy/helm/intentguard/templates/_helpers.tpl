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

{{/* Names of the CRDs the chart installs (files/crds), whose conversion webhook the operator trusts. */}}
{{- define "intentguard.crdNames" -}}
{{- $names := list }}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $names = append $names ($.Files.Get $path | fromYaml).metadata.name }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/* Read access to the custom owner kinds both operators follow (ownerResources): the same rules in both ClusterRoles, so that both resolve a pod to the same identity. */}}
{{- define "intentguard.ownerRules" -}}
{{- range .Values.ownerResources }}
- apiGroups: {{ required "ownerResources[].apiGroups is required" .apiGroups | toJson }}
  resources: {{ required "ownerResources[].resources is required" .resources | toJson }}
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}

{{/* Labels that select the pods of one component of the release; call with (list $ "component"). */}}
{{- define "intentguard.componentSelectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "intentguard.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Name of the network mapper's aggregator: its ServiceAccount, ClusterRole, volume claim, Deployment and Service. */}}
{{- define "intentguard.mapperAggregatorName" -}}
{{- printf "%s-mapper-aggregator" (include "intentguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the network mapper's agent: its ServiceAccount and DaemonSet. */}}
{{- define "intentguard.mapperAgentName" -}}
{{- printf "%s-mapper-agent" (include "intentguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The network mapper's image. */}}
{{- define "intentguard.mapperImage" -}}
{{- printf "%s:%s" .Values.mapper.image.repository (.Values.mapper.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where the mapper's parts find the certificate the credentials operator issues them. */}}
{{- define "intentguard.mapperTLSDir" -}}
/etc/intentguard-mapper/tls
{{- end }}

{{/* Refuses mutual TLS for the mapper without the credentials operator, which issues its certificates. */}}
{{- define "intentguard.mapperTLSCheck" -}}
{{- if and .Values.mapper.tls.enabled (not .Values.credentialsOperator.enabled) }}
{{- fail "mapper.tls.enabled needs credentialsOperator.enabled: the credentials operator issues the mapper's certificates" }}
{{- end }}
{{- end }}
