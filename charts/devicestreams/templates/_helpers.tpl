{{/*
The operator's ServiceAccount, ClusterRole, Lease and CA Secret names are fixed: operator/rbac.yaml
grants by those names, and the chart reuses that file as is. So install one release per cluster.
*/}}
{{- define "devicestreams.serviceAccount" -}}devicestreams-operator{{- end }}

{{- define "devicestreams.hubService" -}}devicestreams-hub{{- end }}

{{/* Names in the hub's serving certificate: the Service in every form an agent may dial, plus hub.dnsNames. */}}
{{- define "devicestreams.hubDnsNames" -}}
{{- $svc := include "devicestreams.hubService" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.operator.clusterDomain) "localhost" -}}
{{- if and .Values.gateway.enabled .Values.gateway.hubName -}}
{{- $names = append $names .Values.gateway.hubName -}}
{{- end -}}
{{- concat $names .Values.hub.dnsNames | uniq | join "," -}}
{{- end }}

{{- define "devicestreams.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "devicestreams.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{- define "devicestreams.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: devicestreams
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: devicestreams
{{- end }}

{{/* Operator Pods; `component` keeps relay Pods (same name label) out of the selector. */}}
{{- define "devicestreams.operatorSelector" -}}
app.kubernetes.io/name: devicestreams
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Gateway Pods. */}}
{{- define "devicestreams.gatewaySelector" -}}
app.kubernetes.io/name: devicestreams
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Non-root, read-only, nothing extra: the same profile the operator gives relay Pods. */}}
{{- define "devicestreams.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
