{{/*
Expand the name of the chart.
*/}}
{{- define "entra-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "entra-sync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The name of one component's objects: <fullname>-<component>, within 63 characters.
*/}}
{{- define "entra-sync.componentName" -}}
{{- printf "%s-%s" (include "entra-sync.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "entra-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "entra-sync.labels" -}}
helm.sh/chart: {{ include "entra-sync.chart" . }}
{{ include "entra-sync.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: entra-sync
{{- end }}

{{/*
Selector labels
*/}}
{{- define "entra-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "entra-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component: pass (dict "root" $ "component" "worker").
*/}}
{{- define "entra-sync.componentLabels" -}}
{{ include "entra-sync.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "entra-sync.componentSelectorLabels" -}}
{{ include "entra-sync.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "entra-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "entra-sync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the URLs and secrets.
*/}}
{{- define "entra-sync.secretName" -}}
{{- default (include "entra-sync.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "entra-sync.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Where the configuration and the secret files are mounted. Secret paths in
config.toml are relative to the configuration file.
*/}}
{{- define "entra-sync.configDir" -}}
/etc/entra-sync
{{- end }}

{{/*
config.toml, rendered from the values. Strings are written with toJson, which
is a valid TOML basic string for any value (quotes, backslashes, newlines).
Provider keys left out of the values take entra-sync's own defaults.
*/}}
{{/*
A provider's one credential in config.toml: Azure Workload Identity, a client
certificate (a kubernetes.io/tls Secret) or, by default, a client secret.
*/}}
{{- define "entra-sync.credentialToml" -}}
{{- $kinds := 0 }}
{{- if .clientSecret }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if .clientCertificate }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if .workloadIdentity }}{{ $kinds = add1 $kinds }}{{ end }}
{{- if gt $kinds 1 }}
{{- fail (printf "providers[%s]: give one of clientSecret, clientCertificate and workloadIdentity" .name) }}
{{- end }}
{{- if .workloadIdentity }}
workload_identity = true
{{- else if .clientCertificate }}
client_certificate_file = {{ printf "secrets/providers/%s/tls.crt" .name | toJson }}
client_key_file = {{ printf "secrets/providers/%s/tls.key" .name | toJson }}
{{- else }}
client_secret_file = {{ printf "secrets/providers/%s/client-secret" .name | toJson }}
{{- end }}
{{- end }}

{{/*
Pod labels for Azure Workload Identity, when a provider uses it: the webhook
then projects the federated token and sets AZURE_* variables.
*/}}
{{- define "entra-sync.workloadIdentityLabel" -}}
{{- $used := false }}
{{- range .Values.providers }}
{{- if .workloadIdentity }}{{ $used = true }}{{ end }}
{{- end }}
{{- if $used }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{- define "entra-sync.configToml" -}}
# Rendered by the entra-sync Helm chart from its values. DATABASE_URL and
# AMQP_URL come from the Secret as environment variables; the other secrets are
# files under secrets/, next to this file.

[database]
max_connections = {{ int .Values.database.maxConnections }}

[amqp]
queue_prefix = {{ .Values.amqp.queuePrefix | toJson }}

[producer]
listen = {{ printf "0.0.0.0:%d" (int .Values.producer.port) | toJson }}
{{- if .Values.producer.statusPage.enabled }}
status_listen = {{ printf "0.0.0.0:%d" (int .Values.producer.statusPage.port) | toJson }}
{{- end }}
events_poll_interval = {{ .Values.producer.eventsPollInterval | toJson }}
watermark_poll_interval = {{ .Values.producer.watermarkPollInterval | toJson }}
silent_scan_interval = {{ .Values.producer.silentScanInterval | toJson }}

[worker]
concurrency = {{ int .Values.worker.concurrency }}
max_attempts = {{ int .Values.worker.maxAttempts }}
listen = {{ printf "0.0.0.0:%d" (int .Values.worker.port) | toJson }}

[authentik]
url = {{ .Values.authentik.url | toJson }}
token_file = "secrets/authentik-token"
webhook_secret_file = "secrets/webhook-secret"
{{- range .Values.providers }}

[[providers]]
name = {{ .name | toJson }}
tenant_id = {{ .tenantId | toJson }}
client_id = {{ .clientId | toJson }}
{{- include "entra-sync.credentialToml" . }}
{{- with .graphUrl }}
graph_url = {{ . | toJson }}
{{- end }}
{{- with .loginUrl }}
login_url = {{ . | toJson }}
{{- end }}
{{- with .filterGroup }}
filter_group = {{ . | toJson }}
{{- end }}
{{- if hasKey . "excludeUsersServiceAccount" }}
exclude_users_service_account = {{ .excludeUsersServiceAccount }}
{{- end }}
{{- with .userDeleteAction }}
user_delete_action = {{ . | toJson }}
{{- end }}
{{- with .groupDeleteAction }}
group_delete_action = {{ . | toJson }}
{{- end }}
{{- if hasKey . "dryRun" }}
dry_run = {{ .dryRun }}
{{- end }}
{{- with .fullSyncInterval }}
full_sync_interval = {{ . | toJson }}
{{- end }}
{{- if hasKey . "deletionThreshold" }}
deletion_threshold = {{ int .deletionThreshold }}
{{- end }}
{{- with .deletionWindow }}
deletion_window = {{ . | toJson }}
{{- end }}
{{- if hasKey . "writeQuota" }}
write_quota = {{ int .writeQuota }}
{{- end }}
{{- with .writeWindow }}
write_window = {{ . | toJson }}
{{- end }}
{{- range .mappings }}

[[providers.mappings]]
name = {{ .name | toJson }}
applies_to = {{ .appliesTo | toJson }}
expression = {{ .expression | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of every entra-sync container that reads the configuration.
*/}}
{{- define "entra-sync.env" -}}
- name: ENTRA_SYNC_CONFIG
  value: {{ include "entra-sync.configDir" . }}/config.toml
- name: ENTRA_SYNC_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.rustLog | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "entra-sync.secretName" . }}
      key: {{ .Values.secrets.databaseUrlKey }}
- name: AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "entra-sync.secretName" . }}
      key: {{ .Values.secrets.amqpUrlKey }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes of every entra-sync pod that reads the configuration: the ConfigMap,
the secret files (projected from one or more Secrets) and a writable /tmp.
*/}}
{{- define "entra-sync.volumes" -}}
- name: config
  configMap:
    name: {{ include "entra-sync.fullname" . }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ include "entra-sync.secretName" . }}
          items:
            - key: {{ .Values.secrets.authentikTokenKey }}
              path: authentik-token
            - key: {{ .Values.secrets.webhookSecretKey }}
              path: webhook-secret
      {{- range .Values.providers }}
      {{- if .clientCertificate }}
      - secret:
          name: {{ .clientCertificate.secretName }}
          items:
            - key: {{ .clientCertificate.certificateKey | default "tls.crt" }}
              path: providers/{{ .name }}/tls.crt
            - key: {{ .clientCertificate.keyKey | default "tls.key" }}
              path: providers/{{ .name }}/tls.key
      {{- else if not .workloadIdentity }}
      {{- $ref := .clientSecret | default dict }}
      - secret:
          name: {{ $ref.secretName | default (include "entra-sync.secretName" $) }}
          items:
            - key: {{ $ref.key | default (printf "%s-client-secret" .name) }}
              path: providers/{{ .name }}/client-secret
      {{- end }}
      {{- end }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "entra-sync.volumeMounts" -}}
- name: config
  mountPath: {{ include "entra-sync.configDir" . }}/config.toml
  subPath: config.toml
  readOnly: true
- name: secrets
  mountPath: {{ include "entra-sync.configDir" . }}/secrets
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by the producer, worker and migrate pods: pass
(dict "root" $ "component" "worker" "values" .Values.worker "spread" true).
The component's nodeSelector is merged over the top-level one; its affinity,
tolerations and topologySpreadConstraints replace the top-level ones when set.
With "spread", pods get topologySpread's constraints unless their own are set.
*/}}
{{- define "entra-sync.podSpecCommon" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with merge (deepCopy ($v.nodeSelector | default dict)) ($root.Values.nodeSelector | default dict) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity | default $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations | default $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .spread }}
{{- if $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $v.topologySpreadConstraints | nindent 2 }}
{{- else if $root.Values.topologySpread.enabled }}
{{- $spread := $root.Values.topologySpread }}
topologySpreadConstraints:
{{- range $spread.topologyKeys }}
  - topologyKey: {{ . }}
    maxSkew: {{ $spread.maxSkew }}
    whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "entra-sync.componentSelectorLabels" (dict "root" $root "component" $.component) | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
