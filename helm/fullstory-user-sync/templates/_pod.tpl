{{/*
The worker's pod template (metadata and spec), the same for the Deployment and, with
staticMembership.enabled, the StatefulSet: one definition, so the two never drift. A static
member's KAFKA_CFG_GROUP_INSTANCE_ID is its pod name (the downward API): a StatefulSet pod
keeps its name across restarts and reschedules, so it rejoins the group as the same member.
*/}}
{{- define "fullstory-user-sync.podTemplate" -}}
{{- $topics := include "fullstory-user-sync.topicList" . | fromJsonArray -}}
metadata:
  annotations:
    {{- if include "fullstory-user-sync.createSecret" . }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- if include "fullstory-user-sync.debezium" . }}
    checksum/field-mapping: {{ include (print $.Template.BasePath "/configmap-field-mapping.yaml") . | sha256sum }}
    {{- end }}
    {{- if .Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.httpPort | int | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "fullstory-user-sync.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "fullstory-user-sync.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # SIGTERM starts a drain of at most SHUTDOWN_TIMEOUT_S; the extra 15 s
  # leave room for the final offset commit and the consumer close.
  terminationGracePeriodSeconds: {{ add (int .Values.shutdownTimeoutSeconds) 15 }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: worker
      image: {{ include "fullstory-user-sync.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run"]
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.httpPort | int }}
          protocol: TCP
      env:
        - name: KAFKA_BOOTSTRAP_SERVERS
          value: {{ .Values.kafka.bootstrapServers | quote }}
        - name: KAFKA_TOPICS
          value: {{ join "," $topics | quote }}
        - name: KAFKA_GROUP_ID
          value: {{ .Values.kafka.groupId | quote }}
        {{- if .Values.staticMembership.enabled }}
        # Static membership: the pod's name (<statefulset>-<ordinal>), unique per replica and
        # the same across its restarts.
        - name: KAFKA_CFG_GROUP_INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        - name: DLQ_TOPIC
          value: {{ .Values.kafka.dlqTopic | quote }}
        {{- with .Values.schemaRegistry.url }}
        - name: SCHEMA_REGISTRY_URL
          value: {{ . | quote }}
        {{- end }}
        - name: SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP
          value: {{ .Values.schemaRegistry.allowInsecureHttp | toString | quote }}
        {{- with .Values.schemaRegistry.localSchemaIds }}
        - name: LOCAL_SCHEMA_IDS
          value: {{ include "fullstory-user-sync.joinInts" . | quote }}
        {{- end }}
        {{- $auth := .Values.schemaRegistry.basicAuth }}
        {{- if or $auth.existingSecret $auth.userInfo }}
        - name: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
          valueFrom:
            secretKeyRef:
              {{- if $auth.existingSecret }}
              name: {{ $auth.existingSecret }}
              key: {{ $auth.existingSecretKey }}
              {{- else }}
              name: {{ include "fullstory-user-sync.secretName" . }}
              key: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
              {{- end }}
        {{- end }}
        - name: FULLSTORY_API_URL
          value: {{ .Values.fullstory.apiUrl | quote }}
        - name: FULLSTORY_ALLOW_INSECURE_HTTP
          value: {{ .Values.fullstory.allowInsecureHttp | toString | quote }}
        - name: FULLSTORY_HTTP_TIMEOUT_S
          value: {{ .Values.fullstory.httpTimeoutSeconds | int | quote }}
        - name: FULLSTORY_API_KEY
          valueFrom:
            secretKeyRef:
              {{- if .Values.fullstory.existingSecret }}
              name: {{ .Values.fullstory.existingSecret }}
              key: {{ .Values.fullstory.existingSecretKey }}
              {{- else }}
              name: {{ include "fullstory-user-sync.secretName" . }}
              key: FULLSTORY_API_KEY
              {{- end }}
        - name: BATCH_MAX_USERS
          value: {{ .Values.batch.maxUsers | int | quote }}
        - name: BATCH_MAX_WAIT_MS
          value: {{ .Values.batch.maxWaitMs | int | quote }}
        - name: MAX_JOBS_IN_FLIGHT
          value: {{ .Values.maxJobsInFlight | int | quote }}
        - name: FULLSTORY_ORG_MAX_JOBS
          value: {{ .Values.fullstory.orgMaxJobs | int | quote }}
        - name: FULLSTORY_ORG_MAX_OPERATIONS
          value: {{ .Values.fullstory.orgMaxOperations | int | quote }}
        - name: MAX_PENDING_USERS
          value: {{ .Values.maxPendingUsers | int | quote }}
        - name: JOB_POLL_MAX_INTERVAL_MS
          value: {{ .Values.jobPollMaxIntervalMs | int | quote }}
        - name: JOB_MAX_WAIT_S
          value: {{ .Values.jobMaxWaitSeconds | int | quote }}
        - name: LIVENESS_TIMEOUT_S
          value: {{ .Values.livenessTimeoutSeconds | int | quote }}
        - name: PROPERTY_TYPES
          value: {{ .Values.propertyTypes | quote }}
        - name: UID_ALLOW_FORMAT_CHARACTERS
          value: {{ .Values.uidAllowFormatCharacters | toString | quote }}
        - name: SOURCE_FORMAT
          value: {{ .Values.sourceFormat | quote }}
        {{- if include "fullstory-user-sync.debezium" . }}
        - name: FIELD_MAPPING
          value: {{ printf "%s/%s" (include "fullstory-user-sync.fieldMappingDir" .) (include "fullstory-user-sync.fieldMappingFile" .) | quote }}
        {{- end }}
        - name: ON_DELETE
          value: {{ .Values.onDelete | quote }}
        - name: SHUTDOWN_TIMEOUT_S
          value: {{ .Values.shutdownTimeoutSeconds | int | quote }}
        - name: HTTP_PORT
          value: {{ .Values.httpPort | int | quote }}
        - name: LOG_LEVEL
          value: {{ .Values.log.level | quote }}
        - name: LOG_FORMAT
          value: {{ .Values.log.format | quote }}
        {{- range $k, $v := .Values.kafka.config }}
        - name: {{ include "fullstory-user-sync.kafkaCfgEnvName" $k }}
          value: {{ include "fullstory-user-sync.str" $v | quote }}
        {{- end }}
        {{- range $k, $v := .Values.kafka.secretConfig }}
        - name: {{ include "fullstory-user-sync.kafkaCfgEnvName" $k }}
          valueFrom:
            secretKeyRef:
              name: {{ include "fullstory-user-sync.secretName" $ }}
              key: {{ include "fullstory-user-sync.kafkaCfgEnvName" $k }}
        {{- end }}
        {{- range $k, $key := .Values.kafka.existingSecretKeys }}
        - name: {{ include "fullstory-user-sync.kafkaCfgEnvName" $k }}
          valueFrom:
            secretKeyRef:
              name: {{ $.Values.kafka.existingSecret }}
              key: {{ $key }}
        {{- end }}
        {{- with .Values.proxy.https }}
        - name: HTTPS_PROXY
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.proxy.http }}
        - name: HTTP_PROXY
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.proxy.noProxy }}
        - name: NO_PROXY
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $kafkaEnvFrom := and .Values.kafka.existingSecret (not .Values.kafka.existingSecretKeys) }}
      {{- if or $kafkaEnvFrom .Values.extraEnvFrom }}
      envFrom:
        {{- if $kafkaEnvFrom }}
        - secretRef:
            name: {{ .Values.kafka.existingSecret }}
        {{- end }}
        {{- with .Values.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml (omit .Values.livenessProbe "enabled") | nindent 8 }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml (omit .Values.readinessProbe "enabled") | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if include "fullstory-user-sync.debezium" . }}
        - name: field-mapping
          mountPath: {{ include "fullstory-user-sync.fieldMappingDir" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if include "fullstory-user-sync.debezium" . }}
    - name: field-mapping
      configMap:
        name: {{ include "fullstory-user-sync.fieldMappingName" . }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  {{- $constraints := list }}
  {{- range . }}
  {{- $c := . }}
  {{- if not $c.labelSelector }}
  {{- $c = merge (dict "labelSelector" (dict "matchLabels" (include "fullstory-user-sync.selectorLabels" $ | fromYaml))) $c }}
  {{- end }}
  {{- $constraints = append $constraints $c }}
  {{- end }}
  topologySpreadConstraints:
    {{- toYaml $constraints | nindent 4 }}
  {{- end }}
{{- end }}
