{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "floodgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-floodgate, or the release name when it
already holds the chart name; truncated to the 63 characters a DNS label allows.
*/}}
{{- define "floodgate.fullname" -}}
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
The headless Service's name (fits in 63 characters).
*/}}
{{- define "floodgate.headlessName" -}}
{{- printf "%s-headless" (include "floodgate.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "floodgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "floodgate.labels" -}}
helm.sh/chart: {{ include "floodgate.chart" . }}
{{ include "floodgate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "floodgate.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: floodgate
{{- end }}

{{/*
Selector labels (immutable in a Deployment: never add to them).
*/}}
{{- define "floodgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "floodgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "floodgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "floodgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "floodgate.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{/*
repository:tag, or repository@digest when a digest is given.
*/}}
{{- define "floodgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "floodgate.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Redis URL and the caller tokens.
*/}}
{{- define "floodgate.secretName" -}}
{{- default (include "floodgate.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Label matchers selecting this release's series in the PrometheusRule.
*/}}
{{- define "floodgate.metricSelector" -}}
{{- if .Values.prometheusRule.metricSelector }}
{{- .Values.prometheusRule.metricSelector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "floodgate.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Whether any caller token is configured or will be generated.
*/}}
{{- define "floodgate.hasTokens" -}}
{{- if or .Values.secrets.existingSecret .Values.auth.generate .Values.auth.adminTokens .Values.auth.frontendTokens .Values.auth.workerTokens }}true{{ end }}
{{- end }}

{{/*
The caller tokens of one role for the chart's Secret: the given list joined
with commas; else, when auth.generate, the token already in the release's
Secret (kept across upgrades) or a new random one; else empty.
Call with (dict "ctx" $ "tokens" LIST "key" SECRET_KEY).
*/}}
{{- define "floodgate.roleTokens" -}}
{{- $ctx := .ctx }}
{{- if .tokens }}
{{- join "," .tokens }}
{{- else if $ctx.Values.auth.generate }}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace (include "floodgate.fullname" $ctx) }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Renders a map as the lines of a TOML table: scalars first (in Helm's sorted
key order), then each nested map as a [prefix.key] sub-table (its header left
out when it holds only sub-tables). Values go through toJson, whose strings,
numbers and booleans are valid TOML. Call with (dict "prefix" "runtime"
"table" MAP); the result has no leading or trailing newline.
*/}}
{{- define "floodgate.tomlTable" -}}
{{- $prefix := .prefix }}
{{- $lines := list }}
{{- range $key, $value := .table }}
{{- if not (kindIs "map" $value) }}
{{- $lines = append $lines (printf "%s = %s" $key (toJson $value)) }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}
{{- $name := printf "%s.%s" $prefix $key }}
{{- $hasScalars := false }}
{{- range $value }}{{ if not (kindIs "map" .) }}{{ $hasScalars = true }}{{ end }}{{ end }}
{{- if $hasScalars }}
{{- $lines = append $lines (printf "[%s]" $name) }}
{{- end }}
{{- $body := include "floodgate.tomlTable" (dict "prefix" $name "table" $value) }}
{{- if $body }}
{{- $lines = append $lines $body }}
{{- end }}
{{- end }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
Settings that must not render, each with a message saying what to do.
*/}}
{{- define "floodgate.validate" -}}
{{- $v := .Values }}
{{- if eq $v.store.type "memory" }}
{{- if $v.autoscaling.enabled }}
{{- fail "floodgate: autoscaling.enabled=true needs the Redis store. With store.type=memory every replica keeps its own queues, load and rate limits, so admission decisions would be wrong. Set store.type=redis and store.redis.url (or secrets.existingSecret), or disable autoscaling." }}
{{- end }}
{{- if gt (int $v.replicaCount) 1 }}
{{- fail (printf "floodgate: replicaCount=%d needs the Redis store. With store.type=memory every replica keeps its own queues, load and rate limits, so admission decisions would be wrong. Set store.type=redis and store.redis.url (or secrets.existingSecret), or replicaCount=1." (int $v.replicaCount)) }}
{{- end }}
{{- end }}
{{- if eq $v.store.type "redis" }}
{{- if and (not $v.store.redis.url) (not $v.secrets.existingSecret) }}
{{- fail "floodgate: store.type=redis needs store.redis.url (redis://host:port/db), or secrets.existingSecret holding it under secrets.keys.redisUrl." }}
{{- end }}
{{- if and $v.store.redis.url (not (regexMatch "^(redis|rediss|redis\\+unix|redis-cluster|rediss-cluster|redis\\+sentinel|rediss\\+sentinel)://" $v.store.redis.url)) }}
{{- fail "floodgate: store.redis.url must start with redis://, rediss://, redis+unix://, redis-cluster://, rediss-cluster://, redis+sentinel:// or rediss+sentinel://." }}
{{- end }}
{{- end }}
{{- with $v.store.redis.tls }}
{{- if and .secretName (or (and .certKey (not .keyKey)) (and .keyKey (not .certKey))) }}
{{- fail "floodgate: store.redis.tls.certKey and store.redis.tls.keyKey go together: set both (mutual TLS) or neither." }}
{{- end }}
{{- if and .secretName $v.store.redis.url (not (regexMatch "^rediss" $v.store.redis.url)) }}
{{- fail "floodgate: store.redis.tls.secretName is set but store.redis.url is not a rediss… URL; floodgate refuses TLS files for a plain connection." }}
{{- end }}
{{- end }}
{{- if not (regexMatch "^[^{]*\\{[^}]+\\}" $v.store.redis.prefix) }}
{{- fail "floodgate: store.redis.prefix must contain a non-empty {hash tag}, e.g. {floodgate}, so Redis Cluster keeps the admission state in one slot." }}
{{- end }}
{{- if and (eq $v.config.profile "production") (not (include "floodgate.hasTokens" .)) }}
{{- fail "floodgate: the production profile refuses to start without caller tokens. Set auth.adminTokens / auth.frontendTokens / auth.workerTokens, secrets.existingSecret, or auth.generate=true." }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "floodgate: set only one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable (null the other)." }}
{{- end }}
{{- if and (gt (int $v.preStopSleepSeconds) 0) (semverCompare "<1.30-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "floodgate: preStopSleepSeconds needs Kubernetes 1.30+ (the preStop sleep action); this cluster is %s. Set preStopSleepSeconds=0." .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "floodgate: autoscaling.minReplicas must not exceed autoscaling.maxReplicas." }}
{{- end }}
{{- end }}

{{/*
A probe's timing fields from its values block.
*/}}
{{- define "floodgate.probeTiming" -}}
{{- $lines := list }}
{{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" }}
{{- if hasKey $ $field }}
{{- $lines = append $lines (printf "%s: %v" $field (index $ $field)) }}
{{- end }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}
