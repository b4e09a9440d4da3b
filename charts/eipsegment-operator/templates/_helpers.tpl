{{- define "eipsegment-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eipsegment-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "eipsegment-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "eipsegment-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "eipsegment-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eipsegment-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eipsegment-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "eipsegment-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "eipsegment-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eipsegment-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's rules on its own resources and events, and on the credentials Secrets of the
served namespaces when Secret references are on: `get` to read them, `patch` to hold each one with a
per-object finalizer (eipsegment.io/in-use-by-<object name>) while a segment depends on it. */}}
{{- define "eipsegment-operator.rules" -}}
- apiGroups: ["eipsegment.io"]
  resources: ["eipsegments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["eipsegment.io"]
  resources: ["eipsegments/status"]
  verbs: ["get", "patch"]
- apiGroups: ["eipsegment.io"]
  resources: ["eipsegments/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.credentials.secretReferences.enabled }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/* Per-namespace mode: the name of the RoleBinding in each served namespace, which carries the
finalizer the operator removes (--rbac-guard-rolebinding). */}}
{{- define "eipsegment-operator.guardedRoleBinding" -}}
{{- include "eipsegment-operator.fullname" . }}
{{- end }}

{{/* Per-namespace mode: the ClusterRole that each served namespace's RoleBinding refers to. */}}
{{- define "eipsegment-operator.namespacedClusterRole" -}}
{{- printf "%s-namespaced" (include "eipsegment-operator.fullname" .) }}
{{- end }}

{{/* The `run` flags of the tuning values that are set (null: the binary's default), in a fixed order. */}}
{{- define "eipsegment-operator.tuningArgs" -}}
{{- $flags := list
  (list "pollSeconds" "poll-seconds")
  (list "resyncSeconds" "resync-seconds")
  (list "transientRetryMaxSeconds" "transient-retry-max-seconds")
  (list "blockedRetrySeconds" "blocked-retry-seconds")
  (list "terminalRetrySeconds" "terminal-retry-seconds")
  (list "callTimeoutSeconds" "call-timeout-seconds")
  (list "releaseQuota" "release-quota")
  (list "allocateQuota" "allocate-quota")
  (list "describeQuota" "describe-quota")
  (list "describeAddressesQuota" "describe-addresses-quota") }}
{{- range $flags }}
{{- $value := index $.Values.tuning (index . 0) }}
{{- if not (kindIs "invalid" $value) }}
- --{{ index . 1 }}={{ $value }}
{{- end }}
{{- end }}
{{- end }}

{{/* The metrics Service's name, which is also the job label of the scraped series: the
ServiceMonitor sets no jobLabel, so Prometheus takes the Service's name. The alerts select it. */}}
{{- define "eipsegment-operator.metricsService" -}}
{{- printf "%s-metrics" (include "eipsegment-operator.fullname" .) }}
{{- end }}

{{/* An alert's runbook section, for its description: (dict "runbook" SECTIONS "alert" NAME "url" URL),
SECTIONS mapping each alert to its README heading and anchor. */}}
{{- define "eipsegment-operator.runbook" -}}
{{- $section := index .runbook .alert -}}
Runbook: the README's section "{{ index $section 0 }}" (README.md#{{ index $section 1 }}).
{{- end }}

{{/* The alert's runbook_url annotation, when prometheusRule.runbookUrl is set. */}}
{{- define "eipsegment-operator.runbookUrl" -}}
{{- with .url -}}
runbook_url: {{ printf "%s#%s" . (index (index $.runbook $.alert) 1) | quote }}
{{- end }}
{{- end }}
