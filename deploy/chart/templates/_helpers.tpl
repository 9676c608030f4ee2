{{- define "hoist.labels" -}}
hoist.dev/app: {{ .Values.app | quote }}
hoist.dev/instance: {{ .Values.instance | quote }}
{{- end -}}
