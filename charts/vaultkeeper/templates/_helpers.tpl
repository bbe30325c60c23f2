{{/* Names and labels, built in one place. */}}

{{- define "vaultkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's object name: the release name, plus the chart name unless it is in it. */}}
{{- define "vaultkeeper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vaultkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vaultkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vaultkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vaultkeeper.labels" -}}
{{ include "vaultkeeper.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: vaultkeeper
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "vaultkeeper.chart" . }}
{{- end -}}

{{- define "vaultkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vaultkeeper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image: a digest pins it; otherwise the tag, defaulting to the chart's appVersion. */}}
{{- define "vaultkeeper.image" -}}
{{- if .Values.image.digest -}}
{{- if not (hasPrefix "sha256:" .Values.image.digest) -}}
{{- fail (printf "image.digest must look like sha256:<64 hex digits>, got %q" .Values.image.digest) -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (toString (default .Chart.AppVersion .Values.image.tag)) -}}
{{- end -}}
{{- end -}}

{{/* Checks values a typo would otherwise turn into a broken Deployment. */}}
{{- define "vaultkeeper.validate" -}}
{{- if not (has .Values.logFormat (list "json" "text")) -}}
{{- fail (printf "logFormat must be json or text, got %q" (toString .Values.logFormat)) -}}
{{- end -}}
{{- if not (kindIs "slice" .Values.watchNamespaces) -}}
{{- fail "watchNamespaces must be a list of namespace names, e.g. [team-a, team-b]" -}}
{{- end -}}
{{- range .Values.watchNamespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .)) -}}
{{- fail (printf "watchNamespaces: %q is not a namespace name (lowercase letters, digits and '-')" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "slice" .Values.extraArgs) -}}
{{- fail "extraArgs must be a list of strings, e.g. [\"--flag=value\"]" -}}
{{- end -}}
{{- if not (kindIs "slice" .Values.extraEnv) -}}
{{- fail "extraEnv must be a list of EnvVar objects, e.g. [{name: FOO, value: bar}]" -}}
{{- end -}}
{{- end -}}
