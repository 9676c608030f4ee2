{{- define "hoistd.labels" -}}
app.kubernetes.io/name: hoistd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "hoistd.selector" -}}
app.kubernetes.io/name: hoistd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The registry hoist pushes to and the stacks are in: registry.address, else the registry
     that image.repository names (its first part, when it has a port or a dot). Pods must
     reach it, so a loopback address is refused with what to set instead. */}}
{{- define "hoistd.registry" -}}
{{- $address := .Values.registry.address -}}
{{- if not $address -}}
{{- $first := index (splitList "/" .Values.image.repository) 0 -}}
{{- if and (contains "/" .Values.image.repository) (or (contains ":" $first) (contains "." $first)) -}}
{{- $address = $first -}}
{{- end -}}
{{- end -}}
{{- if not $address -}}
{{- fail "set registry.address: the registry (host:port) pods push app images to (image.repository names none)" -}}
{{- end -}}
{{- if or (hasPrefix "127." $address) (hasPrefix "localhost" $address) (hasPrefix "[::1]" $address) -}}
{{- fail (printf "the registry %s is a loopback address, which pods (hoistd and its build pods push there) cannot reach: set registry.address to the address pods reach it at (for example the node's), and registry.pulledAs=%s if the nodes pull from it there" $address $address) -}}
{{- end -}}
{{- $address -}}
{{- end -}}
