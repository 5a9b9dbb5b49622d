{{/* Chart name. */}}
{{- define "route.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix. */}}
{{- define "route.fullname" -}}
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

{{- define "route.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "route.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: abcdesktop
{{- end }}

{{- define "route.selectorLabels" -}}
app.kubernetes.io/name: {{ include "route.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "route.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "route.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The RouteConfig's name (ROUTE_CONFIG_NAME). */}}
{{- define "route.configName" -}}
{{- default (include "route.fullname" .) .Values.routeConfig.name }}
{{- end }}

{{/* imagePullPolicy: as set, else IfNotPresent for a digest and Always for a tag. */}}
{{- define "route.pullPolicy" -}}
{{- if .Values.image.pullPolicy }}{{ .Values.image.pullPolicy }}
{{- else if .Values.image.digest }}IfNotPresent
{{- else }}Always
{{- end }}
{{- end }}

{{- define "route.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The RouteConfig spec: the user's spec with keys and tls from their own values. */}}
{{- define "route.spec" -}}
{{- $spec := deepCopy (default dict .Values.routeConfig.spec) }}
{{- $keys := dict
  "signing" (dict "secretName" .Values.keys.signingSecretName "key" .Values.keys.signingKey)
  "payload" (dict "secretName" .Values.keys.payloadSecretName "key" .Values.keys.payloadKey)
  "graceSeconds" .Values.keys.graceSeconds }}
{{- $_ := set $spec "keys" $keys }}
{{- if .Values.tls.enabled }}
{{- $_ := set $spec "tls" (dict "secretName" .Values.tls.secretName) }}
{{- end }}
{{- toYaml $spec }}
{{- end }}

{{/* spec.limits.drainSeconds, 30 when unset. */}}
{{- define "route.drainSeconds" -}}
{{- $limits := default dict (default dict .Values.routeConfig.spec).limits }}
{{- if hasKey $limits "drainSeconds" }}{{ $limits.drainSeconds | int }}{{ else }}30{{ end }}
{{- end }}
