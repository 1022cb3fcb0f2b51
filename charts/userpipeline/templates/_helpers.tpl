{{/* Name of the chart (or nameOverride), at most 63 characters. */}}
{{- define "userpipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart name appended unless it contains it. */}}
{{- define "userpipeline.fullname" -}}
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

{{- define "userpipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: immutable, name + instance. */}}
{{- define "userpipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "userpipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "userpipeline.labels" -}}
helm.sh/chart: {{ include "userpipeline.chart" . }}
{{ include "userpipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | toString | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: userpipeline
{{- end }}

{{/* "repository:tag" of an image block {repository, tag}; the tag defaults to the appVersion and is always
a string (a numeric tag such as 2 renders `userpipeline:2`). Call with (dict "image" .Values.image "ctx" $). */}}
{{- define "userpipeline.imageRef" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString -}}
{{- printf "%s:%s" (toString .image.repository) $tag -}}
{{- end }}

{{- define "userpipeline.image" -}}
{{- include "userpipeline.imageRef" (dict "image" .Values.image "ctx" .) -}}
{{- end }}

{{- define "userpipeline.sparkImage" -}}
{{- include "userpipeline.imageRef" (dict "image" .Values.sparkImage "ctx" .) -}}
{{- end }}

{{- define "userpipeline.operatorServiceAccount" -}}
{{- .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "userpipeline.fullname" .)) }}
{{- end }}

{{- define "userpipeline.sparkServiceAccount" -}}
{{- .Values.spark.serviceAccount.name | default (printf "%s-spark" (include "userpipeline.fullname" .)) }}
{{- end }}

{{- define "userpipeline.hmacSecret" -}}
{{- .Values.hmac.existingSecret | default (printf "%s-hmac" (include "userpipeline.fullname" .)) }}
{{- end }}

{{/* ---- Platform names and wiring (one place; the operator's settings, the platform CRs, the NetworkPolicies
and the helm test use them). A store is external when its external block names it. ---- */}}
{{- define "userpipeline.kafkaExternal" -}}
{{- if .Values.kafka.external.bootstrap }}true{{ end }}
{{- end }}

{{- define "userpipeline.cassandraExternal" -}}
{{- if .Values.cassandra.external.hosts }}true{{ end }}
{{- end }}

{{- define "userpipeline.mongodbExternal" -}}
{{- if .Values.mongodb.external.secretName }}true{{ end }}
{{- end }}

{{- define "userpipeline.kafkaCluster" -}}
{{- .Values.kafka.clusterName | default (include "userpipeline.fullname" .) }}
{{- end }}

{{- define "userpipeline.kafkaBootstrap" -}}
{{- .Values.kafka.external.bootstrap | default (printf "%s-kafka-bootstrap:9092" (include "userpipeline.kafkaCluster" .)) }}
{{- end }}

{{- define "userpipeline.cassandraCluster" -}}
{{- .Values.cassandra.clusterName | default (include "userpipeline.fullname" .) }}
{{- end }}

{{/* K8ssandra's CQL Service, <cluster>-<dc>-service; the port defaults to 9042 (jobs.endpoints.parse_hosts). */}}
{{- define "userpipeline.cassandraHosts" -}}
{{- .Values.cassandra.external.hosts | default (printf "%s-%s-service" (include "userpipeline.cassandraCluster" .) .Values.cassandra.datacenter) }}
{{- end }}

{{- define "userpipeline.mongodbName" -}}
{{- .Values.mongodb.name | default (printf "%s-mongodb" (include "userpipeline.fullname" .)) }}
{{- end }}

{{- define "userpipeline.mongodbPasswordSecret" -}}
{{- printf "%s-%s-password" (include "userpipeline.mongodbName" .) .Values.mongodb.user }}
{{- end }}

{{/* TCP ports of a host[:port][,host[:port]...] list (default for items without one), as a JSON list. */}}
{{- define "userpipeline.hostPorts" -}}
{{- $ports := list }}
{{- range splitList "," .hosts }}
{{- $item := trim . }}
{{- if regexMatch ":[0-9]+$" $item }}
{{- $ports = append $ports (regexFind "[0-9]+$" $item | atoi) }}
{{- else if $item }}
{{- $ports = append $ports $.default }}
{{- end }}
{{- end }}
{{- toJson ($ports | uniq) }}
{{- end }}

{{/* The operator's StoreWiring (operator/kube/wiring.py) as JSON: what the operator reads and what every pod gets. */}}
{{- define "userpipeline.stores" -}}
{{- if .Values.operator.storesOverride }}
{{- toJson .Values.operator.storesOverride }}
{{- else }}
{{- $cas := .Values.cassandra.external }}
{{- $user := dict "secret" (printf "%s-superuser" (include "userpipeline.cassandraCluster" .)) "key" "username" }}
{{- $password := dict "secret" (printf "%s-superuser" (include "userpipeline.cassandraCluster" .)) "key" "password" }}
{{- if include "userpipeline.cassandraExternal" . }}
{{- if $cas.secretName }}
{{- $user = dict "secret" $cas.secretName "key" $cas.usernameKey }}
{{- $password = dict "secret" $cas.secretName "key" $cas.passwordKey }}
{{- else }}
{{- $user = dict "value" "" }}
{{- $password = dict "value" "" }}
{{- end }}
{{- end }}
{{- $uri := dict "secret" (printf "%s-admin-%s" (include "userpipeline.mongodbName" .) .Values.mongodb.user) "key" "connectionString.standard" }}
{{- if include "userpipeline.mongodbExternal" . }}
{{- $uri = dict "secret" .Values.mongodb.external.secretName "key" .Values.mongodb.external.uriKey }}
{{- end }}
{{- toJson (dict
  "cassandra_hosts" (dict "value" (include "userpipeline.cassandraHosts" .))
  "cassandra_keyspace" (dict "value" .Values.cassandra.keyspace)
  "cassandra_username" $user
  "cassandra_password" $password
  "mongo_uri" $uri
  "mongo_database" (dict "value" .Values.mongodb.database)) }}
{{- end }}
{{- end }}

{{/* The pods' environment for the store wiring: a value or a Secret key, as operator/kube/wiring.py renders it. */}}
{{- define "userpipeline.storeEnv" -}}
{{- range $field, $setting := (include "userpipeline.stores" . | fromJson) }}
- name: USERPIPELINE_{{ upper $field }}
{{- if hasKey $setting "value" }}
  value: {{ $setting.value | toString | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ $setting.secret }}
      key: {{ $setting.key | quote }}
      {{- if $setting.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names of the Secrets the wiring reads (the operator may get exactly these). */}}
{{- define "userpipeline.storeSecrets" -}}
{{- $names := list }}
{{- range $_, $setting := (include "userpipeline.stores" . | fromJson) }}
{{- if $setting.secret }}{{ $names = append $names $setting.secret }}{{ end }}
{{- end }}
{{- toJson ($names | uniq | sortAlpha) }}
{{- end }}

{{/* The restricted Pod Security Standard, for every pod and container we own. */}}
{{- define "userpipeline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "userpipeline.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* NetworkPolicy ports from a list of TCP port numbers. */}}
{{- define "userpipeline.np.ports" -}}
{{- range . }}
- {protocol: TCP, port: {{ . }}}
{{- end }}
{{- end }}
