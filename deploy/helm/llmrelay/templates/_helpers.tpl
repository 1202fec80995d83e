{{/* Names and labels shared by every object. */}}
{{- define "llmrelay.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmrelay.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llmrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmrelay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "llmrelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "llmrelay.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "llmrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "llmrelay.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
Seconds Kubernetes waits between starting preStop and SIGKILL: the preStop sleep, then the
longest shutdown the gateway takes after SIGTERM (docs/operations.md, from the drain work):
server.shutdown_grace_s (default 5, the listener still accepts) + server.drain_timeout_s
(default 600, calls in flight finish) + 5 (cut streams send their error event) +
usage.shutdown_timeout_s (default 5, the usage queue's flush) + 10 (a store thread stuck in
a call), and 5 to spare. The values are read from .Values.config, so one setting drives both.
*/}}
{{- define "llmrelay.terminationGracePeriodSeconds" -}}
{{- $server := .Values.config.server | default dict -}}
{{- $usage := .Values.config.usage | default dict -}}
{{- $grace := $server.shutdown_grace_s | default 5 -}}
{{- $drain := $server.drain_timeout_s | default 600 -}}
{{- $flush := $usage.shutdown_timeout_s | default 5 -}}
{{- add (int .Values.preStopSleepSeconds) (int (ceil $grace)) (int (ceil $drain)) 5 (int (ceil $flush)) 10 5 -}}
{{- end -}}

{{/* The container port: config.server.port, default 4000. */}}
{{- define "llmrelay.port" -}}
{{- $server := .Values.config.server | default dict -}}
{{- $server.port | default 4000 -}}
{{- end -}}

{{/* env: for the gateway and the migration Job: secretEnv then env, sorted by name. */}}
{{- define "llmrelay.env" -}}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secretEnv.%s.secret is required" $name) $ref.secret }}
      key: {{ required (printf "secretEnv.%s.key is required" $name) $ref.key }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "llmrelay.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llmrelay.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
