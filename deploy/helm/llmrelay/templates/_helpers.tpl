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
{{- /* hasKey, not `default`: 0 is a setting (no grace, no drain), not "unset". */ -}}
{{- $grace := ternary $server.shutdown_grace_s 5 (hasKey $server "shutdown_grace_s") -}}
{{- $drain := ternary $server.drain_timeout_s 600 (hasKey $server "drain_timeout_s") -}}
{{- $flush := ternary $usage.shutdown_timeout_s 5 (hasKey $usage "shutdown_timeout_s") -}}
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

{{/* The probes' scheme: HTTPS when config.server.tls is set (the gateway serves TLS itself). */}}
{{- define "llmrelay.probeScheme" -}}
{{- $server := .Values.config.server | default dict -}}
{{- ternary "HTTPS" "HTTP" (not (empty $server.tls)) -}}
{{- end -}}

{{/*
server.workers: a number, or auto with a CPU limit (auto is one worker per CPU the pod may
use; without a CPU limit that is every CPU of the node, each worker ~62 MB idle and
~150 MB under load, past a memory limit sized for one). Fails the rendering otherwise.
*/}}
{{- define "llmrelay.checkWorkers" -}}
{{- $server := .Values.config.server | default dict -}}
{{- if and (eq (toString $server.workers) "auto") (not (dig "limits" "cpu" "" .Values.resources)) -}}
{{- fail "config.server.workers: auto needs resources.limits.cpu (else one worker per node CPU starts under the memory limit); set workers to a number, and resources to match (docs/deploy.md)" -}}
{{- end -}}
{{- end -}}

{{/*
The config the migration Job mounts: config without server.tls (the Job does not mount the
certificate files, and `db upgrade` serves nothing).
*/}}
{{- define "llmrelay.migrationConfig" -}}
{{- $config := deepCopy .Values.config -}}
{{- if $config.server -}}
{{- $_ := unset $config.server "tls" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
