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
  (list "transientRetrySeconds" "transient-retry-seconds")
  (list "transientRetryMaxSeconds" "transient-retry-max-seconds")
  (list "blockedRetrySeconds" "blocked-retry-seconds")
  (list "terminalRetrySeconds" "terminal-retry-seconds")
  (list "callTimeoutSeconds" "call-timeout-seconds")
  (list "tokenMemorySeconds" "token-memory-seconds")
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
SECTIONS mapping each alert to its heading in deploy/RUNBOOK.md and the heading's anchor. */}}
{{- define "eipsegment-operator.runbook" -}}
{{- $section := index .runbook .alert -}}
Runbook: deploy/RUNBOOK.md, section "{{ index $section 0 }}".
{{- end }}

{{/* The alert's runbook_url annotation, when prometheusRule.runbookUrl is set. */}}
{{- define "eipsegment-operator.runbookUrl" -}}
{{- with .url -}}
runbook_url: {{ printf "%s#%s" . (index (index $.runbook $.alert) 1) | quote }}
{{- end }}
{{- end }}

{{/* The username the operator's ServiceAccount authenticates as: the admission policies exempt it. */}}
{{- define "eipsegment-operator.operatorUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "eipsegment-operator.serviceAccountName" .) }}
{{- end }}

{{/* The tenancy policy file the operator reads (--tenancy-policy), as given in the values. */}}
{{- define "eipsegment-operator.tenancyPolicy" -}}
{{- $t := .Values.tenancy }}
{{- toYaml (dict "profile" $t.profile "default" $t.default "rules" $t.rules) }}
{{- end }}

{{/* "true" when a tenancy rule matches namespaces by label: the operator then watches Namespaces. */}}
{{- define "eipsegment-operator.watchesNamespaces" -}}
{{- range .Values.tenancy.rules }}
{{- if hasKey . "namespaceSelector" }}true{{ end }}
{{- end }}
{{- end }}

{{/* The tenancy policy resolved as the operator resolves it, as JSON: "default" (namespaces no rule
matches) and "rules" in order, each with every allowance set (the rule's, else the default's, else
the profile's) and its match flattened for CEL: namespaces, selected (it has a namespaceSelector),
matchLabels, matchExpressions. Invalid rules fail the rendering, saying why. */}}
{{- define "eipsegment-operator.resolvedTenancy" -}}
{{- $t := .Values.tenancy }}
{{- $fields := list "operatorCredentials" "allocate" "minEipMask" "adopt" "adoptWithDelete" }}
{{- $profile := dict "operatorCredentials" true "allocate" true "minEipMask" 0 "adopt" true "adoptWithDelete" true }}
{{- if eq $t.profile "shared" }}
{{- $profile = dict "operatorCredentials" false "allocate" true "minEipMask" 28 "adopt" false "adoptWithDelete" false }}
{{- end }}
{{- $default := dict "name" "default" }}
{{- range $fields }}
{{- $_ := set $default . (hasKey $t.default . | ternary (index $t.default .) (index $profile .)) }}
{{- end }}
{{- $rules := list }}
{{- $names := dict }}
{{- range $t.rules }}
{{- $rule := dict "name" .name "namespaces" (.namespaces | default list) "selected" (hasKey . "namespaceSelector") }}
{{- if hasKey $names .name }}
{{- fail (printf "tenancy rule %q is given twice: each rule needs its own name, which refusals quote" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- if not (or $rule.namespaces $rule.selected) }}
{{- fail (printf "tenancy rule %q names no namespaces and has no namespaceSelector: it would match nothing" .name) }}
{{- end }}
{{- $selector := .namespaceSelector | default dict }}
{{- $expressions := list }}
{{- range $selector.matchExpressions }}
{{- $values := .values | default list }}
{{- if and (has .operator (list "In" "NotIn")) (not $values) }}
{{- fail (printf "tenancy rule %q: matchExpressions %s %s needs values" $rule.name .key .operator) }}
{{- end }}
{{- if and (has .operator (list "Exists" "DoesNotExist")) $values }}
{{- fail (printf "tenancy rule %q: matchExpressions %s %s takes no values" $rule.name .key .operator) }}
{{- end }}
{{- $expressions = append $expressions (dict "key" .key "operator" .operator "values" $values) }}
{{- end }}
{{- $_ := set $rule "matchLabels" ($selector.matchLabels | default dict) }}
{{- $_ := set $rule "matchExpressions" $expressions }}
{{- $r := . }}
{{- range $fields }}
{{- $_ := set $rule . (hasKey $r . | ternary (index $r .) (index $default .)) }}
{{- end }}
{{- $rules = append $rules $rule }}
{{- end }}
{{- toJson (dict "default" $default "rules" $rules) }}
{{- end }}

{{/* Whether a resolved tenancy rule matches the namespace of the request, in CEL (with
variables.labels the namespace's labels): by name, or by its namespaceSelector as Kubernetes matches
label selectors. Strings are JSON's, which CEL reads. */}}
{{- define "eipsegment-operator.ruleMatches" -}}
{{- $terms := list }}
{{- range $key, $value := .matchLabels }}
{{- $terms = append $terms (printf "(%s in variables.labels && variables.labels[%s] == %s)" (toJson $key) (toJson $key) (toJson $value)) }}
{{- end }}
{{- range .matchExpressions }}
{{- $has := printf "%s in variables.labels" (toJson .key) }}
{{- $in := printf "(%s && variables.labels[%s] in %s)" $has (toJson .key) (toJson .values) }}
{{- $terms = append $terms (get (dict "In" $in "NotIn" (print "!" $in) "Exists" $has "DoesNotExist" (printf "!(%s)" $has)) .operator) }}
{{- end }}
{{- $either := list }}
{{- with .namespaces }}
{{- $either = append $either (printf "namespaceObject.metadata.name in %s" (toJson .)) }}
{{- end }}
{{- if .selected }}
{{- $either = append $either (printf "(%s)" ($terms | default (list "true") | join " && ")) }}
{{- end }}
{{- join " || " $either }}
{{- end }}

{{/* The admission policies' bindings: per namespace, only the served namespaces (another release
may serve the others, with its own operator). */}}
{{- define "eipsegment-operator.policyScope" -}}
{{- if .Values.watchNamespaces }}
matchResources:
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- toYaml .Values.watchNamespaces | nindent 10 }}
{{- end }}
{{- end }}

{{/* The operator's image. The placeholder repository names no registry: a cluster would pull an
image nobody published, so the rendering stops unless image.allowPlaceholder says it is a local test. */}}
{{- define "eipsegment-operator.image" -}}
{{- $image := .Values.image }}
{{- if and (eq $image.repository "eipsegment-operator") (not $image.allowPlaceholder) }}
{{- fail "image.repository is the placeholder \"eipsegment-operator\": no public image is published. Build it (make image), push it to your registry and set image.repository (e.g. registry.example.com/platform/eipsegment-operator); for a local test whose nodes already hold the image, set image.allowPlaceholder=true" }}
{{- end }}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) }}
{{- end }}
