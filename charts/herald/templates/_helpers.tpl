{{/* Name of the chart's objects: the release name, with the chart name unless it holds it. */}}
{{- define "herald.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "herald.labels" -}}
{{ include "herald.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* cluster is "true" when the hub shares its log on Redis or NATS; it fails on another scheme. */}}
{{- define "herald.cluster" -}}
{{- with .Values.transport.url -}}
{{- $scheme := (urlParse .).scheme -}}
{{- if not (has $scheme (list "redis" "rediss" "nats")) -}}
{{- fail (printf "transport.url: scheme %q is not a cluster transport (want redis, rediss or nats); leave it empty for one node with its history on a persistent volume" $scheme) -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{- define "herald.secretName" -}}
{{- default (include "herald.fullname" .) .Values.jwt.existingSecret -}}
{{- end -}}
