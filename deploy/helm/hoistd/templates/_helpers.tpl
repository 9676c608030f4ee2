{{- define "hoistd.labels" -}}
app.kubernetes.io/name: hoistd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "hoistd.selector" -}}
app.kubernetes.io/name: hoistd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
