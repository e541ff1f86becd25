{{/*
Expand the name of the chart.
*/}}
{{- define "fullstory-user-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
Truncated at 63 chars because some Kubernetes name fields are limited to this
(by the DNS naming spec). If the release name contains the chart name it is
used as the full name.
*/}}
{{- define "fullstory-user-sync.fullname" -}}
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
Chart name and version as used by the chart label.
*/}}
{{- define "fullstory-user-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "fullstory-user-sync.labels" -}}
helm.sh/chart: {{ include "fullstory-user-sync.chart" . }}
{{ include "fullstory-user-sync.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: worker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels (immutable on a Deployment: keep them minimal).
*/}}
{{- define "fullstory-user-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fullstory-user-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The workload's kind: a StatefulSet with staticMembership.enabled, else a Deployment.
*/}}
{{- define "fullstory-user-sync.workloadKind" -}}
{{- if .Values.staticMembership.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/*
The StatefulSet's headless Service (staticMembership.enabled).
*/}}
{{- define "fullstory-user-sync.headlessServiceName" -}}
{{- printf "%s-headless" (include "fullstory-user-sync.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "fullstory-user-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fullstory-user-sync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference.
*/}}
{{- define "fullstory-user-sync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/*
Source topics as a list, whether given as a list or a comma-separated string.
Returns JSON (use with fromJsonArray).
*/}}
{{- define "fullstory-user-sync.topicList" -}}
{{- $topics := list }}
{{- if kindIs "slice" .Values.kafka.topics }}
{{- range .Values.kafka.topics }}
{{- $t := toString . | trim }}
{{- if $t }}{{- $topics = append $topics $t }}{{- end }}
{{- end }}
{{- else if .Values.kafka.topics }}
{{- range splitList "," (toString .Values.kafka.topics) }}
{{- $t := trim . }}
{{- if $t }}{{- $topics = append $topics $t }}{{- end }}
{{- end }}
{{- end }}
{{- toJson $topics }}
{{- end }}

{{/*
Name of the Secret this chart creates (API key, registry basic auth, kafka.secretConfig).
*/}}
{{- define "fullstory-user-sync.secretName" -}}
{{- include "fullstory-user-sync.fullname" . }}
{{- end }}

{{/*
Whether the chart creates its own Secret: "true" or "".
*/}}
{{- define "fullstory-user-sync.createSecret" -}}
{{- $auth := .Values.schemaRegistry.basicAuth }}
{{- if or (and (not .Values.fullstory.existingSecret) .Values.fullstory.apiKey) .Values.kafka.secretConfig (and (not $auth.existingSecret) $auth.userInfo) }}true{{- end }}
{{- end }}

{{/*
Whether the worker reads Debezium change events (sourceFormat debezium): "true" or "".
Only then is the field mapping rendered, mounted and named in FIELD_MAPPING.
*/}}
{{- define "fullstory-user-sync.debezium" -}}
{{- if eq (toString .Values.sourceFormat) "debezium" }}true{{- end }}
{{- end }}

{{/*
The field mapping's ConfigMap, the directory it is mounted at (read-only) and the file in it:
FIELD_MAPPING is <dir>/<file>.
*/}}
{{- define "fullstory-user-sync.fieldMappingName" -}}
{{- printf "%s-field-mapping" (include "fullstory-user-sync.fullname" .) }}
{{- end }}
{{- define "fullstory-user-sync.fieldMappingDir" -}}
/etc/fullstory-user-sync
{{- end }}
{{- define "fullstory-user-sync.fieldMappingFile" -}}
field-mapping.json
{{- end }}

{{/*
Substrings of librdkafka property names whose values are credentials: the worker's
(worker/config/kafka.py _SECRET_HINTS, which tests/unit/config/test_settings_consistency.py holds
this list to) plus username, which names the credential. kafka.config refuses them.
*/}}
{{- define "fullstory-user-sync.secretHints" -}}
["password", "secret", "key", "token", "credential", "jaas", "oauthbearer.config", "username"]
{{- end }}

{{/*
librdkafka property name -> KAFKA_CFG_* env var name
(security.protocol -> KAFKA_CFG_SECURITY_PROTOCOL).
*/}}
{{- define "fullstory-user-sync.kafkaCfgEnvName" -}}
{{- printf "KAFKA_CFG_%s" (. | replace "." "_" | replace "-" "_" | upper) }}
{{- end }}

{{/*
The most replicas worth running: min(kafka.partitionCount, fullstory.orgMaxJobs). More than
the partitions sit idle; more than orgMaxJobs would each still take one job (a replica with
partitions always has at least one) and overshoot the org's budget.
*/}}
{{- define "fullstory-user-sync.replicaBound" -}}
{{- min (int .Values.kafka.partitionCount) (int .Values.fullstory.orgMaxJobs) }}
{{- end }}

{{/*
Effective KEDA maxReplicaCount: keda.maxReplicaCount when set, otherwise the replica bound
(fullstory-user-sync.replicaBound). The replicas share the org's budget, so their number
does not depend on maxJobsInFlight.
*/}}
{{- define "fullstory-user-sync.kedaMaxReplicas" -}}
{{- $max := int (default 0 .Values.keda.maxReplicaCount) }}
{{- if le $max 0 }}
{{- $max = int (include "fullstory-user-sync.replicaBound" .) }}
{{- end }}
{{- $max }}
{{- end }}

{{/*
Render-time checks that values.schema.json cannot express.
Included from deployment.yaml (whichever workload it renders); renders nothing, or fails
the release.
*/}}
{{- define "fullstory-user-sync.validate" -}}
{{- $missing := list }}
{{- if not (toString .Values.kafka.bootstrapServers | trim) }}
{{- $missing = append $missing "kafka.bootstrapServers (the brokers, host:port,...)" }}
{{- end }}
{{- if not (include "fullstory-user-sync.topicList" . | fromJsonArray) }}
{{- $missing = append $missing "kafka.topics (a list of topics, or a comma-separated string)" }}
{{- end }}
{{- if not (or .Values.fullstory.existingSecret .Values.fullstory.apiKey) }}
{{- $missing = append $missing "fullstory.existingSecret (a Secret holding the FullStory API key, key fullstory.existingSecretKey) or fullstory.apiKey" }}
{{- end }}
{{- if include "fullstory-user-sync.debezium" . }}
{{- if not (toString .Values.schemaRegistry.url | trim) }}
{{- $missing = append $missing "schemaRegistry.url (sourceFormat debezium: table schemas are read from the registry)" }}
{{- end }}
{{- if not .Values.fieldMapping }}
{{- $missing = append $missing "fieldMapping (sourceFormat debezium: the table column of each FullStory field, uid at least)" }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "missing required values: %s" (join "; " $missing)) }}
{{- end }}
{{- if and .Values.fieldMapping (not (include "fullstory-user-sync.debezium" .)) }}
{{- fail (printf "fieldMapping is set but sourceFormat is %s: the mapping is read only with sourceFormat debezium (the worker exits 2 on FIELD_MAPPING otherwise); remove fieldMapping or set sourceFormat=debezium" (toString .Values.sourceFormat)) }}
{{- end }}
{{- $hints := include "fullstory-user-sync.secretHints" . | fromJsonArray }}
{{- range $k, $v := .Values.kafka.config }}
{{- $lk := lower $k }}
{{- range $hints }}
{{- if contains . $lk }}
{{- fail (printf "kafka.config.%s looks like a credential (its name contains %q): put it in a Secret, kafka.existingSecret (with kafka.existingSecretKeys, or as key %s) or kafka.secretConfig, not in plain values" $k . (include "fullstory-user-sync.kafkaCfgEnvName" $k)) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $k := concat (keys .Values.kafka.config) (keys .Values.kafka.secretConfig) (keys .Values.kafka.existingSecretKeys) }}
{{- if eq (lower $k) "group.instance.id" }}
{{- fail "kafka group.instance.id would give every pod the same id, and two live members with one id fence each other: set staticMembership.enabled=true instead (a StatefulSet, each pod's id its own name)" }}
{{- end }}
{{- end }}
{{- if .Values.staticMembership.enabled }}
{{- $protocol := lower (toString (index .Values.kafka.config "group.protocol" | default "classic")) }}
{{- if eq $protocol "consumer" }}
{{- fail "staticMembership.enabled with kafka.config.group.protocol=consumer: under Kafka 4's consumer protocol a crashed member's instance id stays taken until its session expires, so its restarted pod is refused (the worker exits 1) instead of getting its partitions back; use static membership with the classic protocol" }}
{{- end }}
{{- end }}
{{- range $k := list "https" "http" }}
{{- if contains "@" (toString (index $.Values.proxy $k)) }}
{{- fail (printf "proxy.%s holds credentials (user:password@), which would sit in the pod spec in clear: leave it empty and set %s_PROXY from a Secret with extraEnv (valueFrom.secretKeyRef)" $k (upper $k)) }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.existingSecretKeys (not .Values.kafka.existingSecret) }}
{{- fail "kafka.existingSecretKeys needs kafka.existingSecret, the Secret holding those keys" }}
{{- end }}
{{- range $k, $v := .Values.kafka.existingSecretKeys }}
{{- if or (hasKey $.Values.kafka.config $k) (hasKey $.Values.kafka.secretConfig $k) }}
{{- fail (printf "%s is set in kafka.existingSecretKeys and in kafka.config or kafka.secretConfig: keep one" $k) }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (has (toString $pdb.maxUnavailable) (list "0" "0%")) }}
{{- fail "podDisruptionBudget.maxUnavailable 0 would block every voluntary eviction (node drains, upgrades) forever: use 1 or more, or podDisruptionBudget.enabled=false" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.kafka.cidrs) }}
{{- fail "networkPolicy.enabled needs networkPolicy.kafka.cidrs (the brokers' addresses): without them the worker could reach no broker" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.schemaRegistry.url (not .Values.networkPolicy.schemaRegistry.cidrs) }}
{{- fail "networkPolicy.enabled with schemaRegistry.url needs networkPolicy.schemaRegistry.cidrs: without them the worker could not reach the registry" }}
{{- end }}
{{- range $k, $v := .Values.kafka.secretConfig }}
{{- if hasKey $.Values.kafka.config $k }}
{{- fail (printf "%s is set in both kafka.config and kafka.secretConfig: keep one" $k) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.fullstory "runningJobsLimit" }}
{{- fail (printf "fullstory.runningJobsLimit (%v) was removed: FullStory's limits are per org and the replicas now share one budget, fullstory.orgMaxJobs (jobs the whole group may have in flight, default 100, 1..200; each replica takes its partitions' share), with fullstory.orgMaxOperations. Set fullstory.orgMaxJobs instead and remove runningJobsLimit; replicas x maxJobsInFlight no longer needs to stay under anything" .Values.fullstory.runningJobsLimit) }}
{{- end }}
{{- $orgJobs := int .Values.fullstory.orgMaxJobs }}
{{- $parts := int .Values.kafka.partitionCount }}
{{- if .Values.keda.enabled }}
{{- if le $parts 0 }}
{{- fail "keda.enabled needs kafka.partitionCount (total partitions of kafka.topics) so maxReplicaCount can be capped at it" }}
{{- end }}
{{- $max := int (include "fullstory-user-sync.kedaMaxReplicas" .) }}
{{- $bound := int (include "fullstory-user-sync.replicaBound" .) }}
{{- if gt $max $bound }}
{{- fail (printf "keda.maxReplicaCount (%d) exceeds min(kafka.partitionCount, fullstory.orgMaxJobs) = min(%d, %d) = %d: replicas beyond the partitions would sit idle, and beyond orgMaxJobs each would still take one FullStory job and overshoot the org budget; lower it or leave it 0 (the default is that bound)" $max $parts $orgJobs $bound) }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) $max }}
{{- fail (printf "keda.minReplicaCount (%d) exceeds the effective maxReplicaCount (%d)" (int .Values.keda.minReplicaCount) $max) }}
{{- end }}
{{- else }}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $parts 0) (gt $replicas $parts) }}
{{- fail (printf "replicaCount (%d) exceeds kafka.partitionCount (%d): extra consumers would sit idle" $replicas $parts) }}
{{- end }}
{{- if gt $replicas $orgJobs }}
{{- fail (printf "replicaCount (%d) exceeds fullstory.orgMaxJobs (%d): each replica with partitions takes at least one FullStory job, so the group would overshoot the org budget; raise fullstory.orgMaxJobs (up to 200) or run fewer replicas" $replicas $orgJobs) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A scalar as a string. Numbers from values files arrive as float64, which
would print 52428800 as 5.24288e+07: whole numbers are printed as integers.
*/}}
{{- define "fullstory-user-sync.str" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
A list of numbers as "1,7" (values files give them as float64).
*/}}
{{- define "fullstory-user-sync.joinInts" -}}
{{- $out := list }}
{{- range . }}{{- $out = append $out (include "fullstory-user-sync.str" .) }}{{- end }}
{{- join "," $out }}
{{- end }}

{{/*
PromQL label matchers selecting this release's series.
*/}}
{{- define "fullstory-user-sync.metricSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "namespace=%q,job=%q" .Release.Namespace (include "fullstory-user-sync.fullname" .)) }}
{{- end }}

{{/*
A Prometheus duration (90s, 15m, 2h, 1d) in seconds, for comparing with time().
*/}}
{{- define "fullstory-user-sync.seconds" -}}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := regexFind "[a-z]+$" . }}
{{- $factor := get (dict "ms" 0 "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 "y" 31536000) $unit | int }}
{{- mul $n $factor }}
{{- end }}
