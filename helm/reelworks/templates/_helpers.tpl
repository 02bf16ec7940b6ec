{{/* Chart name, overridable. */}}
{{- define "reelworks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource-name prefix: the release name, plus the chart name unless the release name already
contains it (release "reelworks" gives "reelworks"). 63 characters is the DNS-label limit.
*/}}
{{- define "reelworks.fullname" -}}
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

{{- define "reelworks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "reelworks.labels" -}}
helm.sh/chart: {{ include "reelworks.chart" . }}
{{ include "reelworks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: reelworks
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The stable subset used to select pods (the NetworkPolicy); never add a changing value. */}}
{{- define "reelworks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reelworks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "reelworks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reelworks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap Kubeflow steps read endpoint/region/Pushgateway from (reelworks.kubeflow.with_s3). */}}
{{- define "reelworks.configMapName" -}}
{{- printf "%s-config" (include "reelworks.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reelworks.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Repository of a flavour's image, `registry/name`.
Usage: include "reelworks.imageRepository" (dict "root" $ "flavour" "cpu")
*/}}
{{- define "reelworks.imageRepository" -}}
{{- $root := .root }}
{{- $name := get $root.Values.images .flavour }}
{{- if not $name }}
{{- fail (printf "unknown image flavour %q: expected one of %s" .flavour (keys $root.Values.images | sortAlpha | join ", ")) }}
{{- end }}
{{- printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) $name }}
{{- end }}

{{/*
Image of a flavour: `registry/name@digest` when image.digests names one, else `registry/name:tag`,
the same string reelworks.settings.image() builds.
Usage: include "reelworks.image" (dict "root" $ "flavour" "cpu")
*/}}
{{- define "reelworks.image" -}}
{{- $repository := include "reelworks.imageRepository" . }}
{{- $digest := get (.root.Values.image.digests | default dict) .flavour }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository (include "reelworks.imageTag" .root) }}
{{- end }}
{{- end }}

{{/* Pod Security Admission labels for the namespace: enforce, and audit and warn alike. */}}
{{- define "reelworks.podSecurityLabels" -}}
{{- $level := .Values.namespace.podSecurity }}
{{- $version := .Values.namespace.podSecurityVersion }}
{{- range $mode := list "enforce" "audit" "warn" }}
pod-security.kubernetes.io/{{ $mode }}: {{ $level }}
pod-security.kubernetes.io/{{ $mode }}-version: {{ $version }}
{{- end }}
{{- end }}

{{- define "reelworks.twitter.queueUri" -}}
{{- .Values.twitter.queueUri | default (printf "s3://%s/plotbot/queue.jsonl" .Values.s3.bucket) }}
{{- end }}

{{/*
Env vars every reelworks pod gets (an EnvVar list). Empty settings are left out rather than
set to "", which boto3 would take as a real (empty) endpoint or region.
*/}}
{{- define "reelworks.env" -}}
- name: REELWORKS_S3_BUCKET
  value: {{ required "s3.bucket is required" .Values.s3.bucket | quote }}
{{- with .Values.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.credentialsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- with .Values.metrics.pushgatewayUrl }}
- name: REELWORKS_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
- name: REELWORKS_IMAGE_REGISTRY
  value: {{ .Values.image.registry | quote }}
- name: REELWORKS_IMAGE_TAG
  value: {{ include "reelworks.imageTag" . | quote }}
{{- with .Values.s3.credentialsSecret }}
- name: REELWORKS_K8S_S3_SECRET
  value: {{ . | quote }}
{{- end }}
- name: REELWORKS_K8S_CONFIGMAP
  value: {{ include "reelworks.configMapName" . | quote }}
- name: REELWORKS_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- /* The root filesystem is read-only: everything that writes goes under the /tmp emptyDir. */}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: REELWORKS_CACHE_DIR
  value: /tmp/reelworks-cache
- name: MPLCONFIGDIR
  value: /tmp/mpl
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod securityContext meeting the "restricted" Pod Security Standard. */}}
{{- define "reelworks.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.uid | int64 }}
runAsGroup: {{ .Values.podSecurity.gid | int64 }}
fsGroup: {{ .Values.podSecurity.gid | int64 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container securityContext: "restricted" plus a read-only root filesystem. */}}
{{- define "reelworks.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "reelworks.scratchVolume" -}}
{{- $emptyDir := dict }}
{{- with .Values.scratch.medium }}{{ $_ := set $emptyDir "medium" . }}{{ end }}
{{- with .Values.scratch.sizeLimit }}{{ $_ := set $emptyDir "sizeLimit" . }}{{ end -}}
- name: scratch
  emptyDir: {{- toYaml $emptyDir | nindent 4 }}
{{- end }}

{{- define "reelworks.scratchMount" -}}
- name: scratch
  mountPath: /tmp
{{- end }}

{{/* Name prefix of the cluster-scoped admission policies: unique per namespace and release. */}}
{{- define "reelworks.admissionPolicyPrefix" -}}
{{- printf "%s-%s" .Release.Namespace (include "reelworks.fullname" .) }}
{{- end }}

{{/* CEL snippets of admissionpolicy.yaml; each takes the CEL expression it tests. */}}
{{/* An image reference of one of variables.images, with a tag or a digest. */}}
{{- define "reelworks.cel.allowedImage" -}}
variables.images.exists(repository, {{ . }}.startsWith(repository + ':') || {{ . }}.startsWith(repository + '@'))
{{- end }}

{{/* An EnvVar that takes no Secret but variables.secrets. */}}
{{- define "reelworks.cel.envSecret" -}}
!has({{ . }}.valueFrom) || !has({{ . }}.valueFrom.secretKeyRef) || (has({{ . }}.valueFrom.secretKeyRef.name) && {{ . }}.valueFrom.secretKeyRef.name in variables.secrets)
{{- end }}

{{/* A container's env (and envFrom, where its schema has it) with no Secret but variables.secrets. */}}
{{- define "reelworks.cel.containerSecrets" -}}
(!has({{ .container }}.env) || {{ .container }}.env.all(e, {{ include "reelworks.cel.envSecret" "e" }}))
{{- if .envFrom }} && (!has({{ .container }}.envFrom) || {{ .container }}.envFrom.all(f, !has(f.secretRef) || (has(f.secretRef.name) && f.secretRef.name in variables.secrets))){{ end }}
{{- end }}

{{/* A TrainJob initializer (dataset or model): env and secretRef. */}}
{{- define "reelworks.cel.initializerSecrets" -}}
((!has({{ . }}.env) || {{ . }}.env.all(e, {{ include "reelworks.cel.envSecret" "e" }})) && (!has({{ . }}.secretRef) || (has({{ . }}.secretRef.name) && {{ . }}.secretRef.name in variables.secrets)))
{{- end }}
