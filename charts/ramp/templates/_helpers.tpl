{{- define "ramp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ramp.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ramp.labels" -}}
{{ include "ramp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ramp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ramp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ramp.webhookServiceName" -}}
{{- printf "%s-webhook" (include "ramp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ramp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ramp.leaseName" -}}
{{- printf "%s-leader" (include "ramp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* With watchNamespace set, the webhooks review only that namespace's objects. */ -}}
{{- define "ramp.webhookNamespaceSelector" -}}
{{- with .Values.watchNamespace -}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ . | quote }}
{{- end -}}
{{- end -}}
