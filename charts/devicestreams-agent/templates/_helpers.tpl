{{- define "devicestreams-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "devicestreams-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: devicestreams-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: devicestreams
{{- end }}

{{- define "devicestreams-agent.selector" -}}
app.kubernetes.io/name: devicestreams-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "devicestreams-agent.tokenSecret" -}}
{{- .Values.enrollment.existingSecret | default (printf "%s-enrollment" (include "devicestreams-agent.fullname" .)) -}}
{{- end }}

{{- define "devicestreams-agent.caSecret" -}}
{{- .Values.hub.existingSecret | default (printf "%s-hub-ca" (include "devicestreams-agent.fullname" .)) -}}
{{- end }}

{{- define "devicestreams-agent.stateClaim" -}}
{{- .Values.state.persistentVolumeClaim.existingClaim | default (printf "%s-state" (include "devicestreams-agent.fullname" .)) -}}
{{- end }}

{{/*
The agent container, used by both modes. A parent chart that has this chart as a dependency
(alias agent, mode embedded) adds it to its own Pod, with the volumes below:
  {{- include "devicestreams-agent.container" .Subcharts.agent | nindent 8 }}
  {{- include "devicestreams-agent.volumes" .Subcharts.agent | nindent 8 }}
*/}}
{{- define "devicestreams-agent.container" -}}
- name: devicestreams-agent
  image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - agent
    - --hub={{ required "hub.address is required (host:port of the hub Service)" .Values.hub.address }}
    - --hub-ca=/etc/devicestreams/hub/ca.crt
    {{- with .Values.hub.serverName }}
    - --hub-server-name={{ . }}
    {{- end }}
    {{- if .Values.device.name }}
    - --device={{ required "device.namespace is required" .Values.device.namespace }}/{{ .Values.device.name }}
    {{- else if eq .Values.mode "daemonset" }}
    - --device={{ required "device.namespace is required" .Values.device.namespace }}/$(NODE_NAME)
    {{- else }}
    - {{ fail "device.name is required in sidecar and embedded modes (one workload is one device)" }}
    {{- end }}
    {{- if .Values.enrollment.keyPerNode }}
    - --enrollment-token-file=/etc/devicestreams/enrollment/$(NODE_NAME)
    {{- else }}
    - --enrollment-token-file=/etc/devicestreams/enrollment/{{ .Values.enrollment.key }}
    {{- end }}
    - --state-dir=/var/lib/devicestreams-agent
    - --config=/etc/devicestreams/agent/config.json
    - --metrics-listen=0.0.0.0:{{ .Values.metrics.port }}
    {{- range .Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: DEVICESTREAMS_LOG_LEVEL
      value: {{ .Values.logLevel | quote }}
    - name: NODE_NAME
      valueFrom:
        fieldRef: { fieldPath: spec.nodeName }
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - { name: agent-metrics, containerPort: {{ .Values.metrics.port }}, protocol: TCP }
  # Alive while the process serves; ready only while attached to the hub.
  livenessProbe:
    httpGet: { path: /healthz, port: agent-metrics }
    periodSeconds: 10
    timeoutSeconds: 5
  readinessProbe:
    httpGet: { path: /readyz, port: agent-metrics }
    periodSeconds: 10
    timeoutSeconds: 5
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - { name: agent-config, mountPath: /etc/devicestreams/agent, readOnly: true }
    - { name: agent-enrollment, mountPath: /etc/devicestreams/enrollment, readOnly: true }
    - { name: agent-hub-ca, mountPath: /etc/devicestreams/hub, readOnly: true }
    - { name: agent-state, mountPath: /var/lib/devicestreams-agent }
    - { name: agent-tmp, mountPath: /tmp }
{{- end }}

{{- define "devicestreams-agent.volumes" -}}
- name: agent-config
  configMap:
    name: {{ include "devicestreams-agent.fullname" . }}-config
- name: agent-enrollment
  secret:
    secretName: {{ include "devicestreams-agent.tokenSecret" . }}
    defaultMode: 0400
- name: agent-hub-ca
  secret:
    secretName: {{ include "devicestreams-agent.caSecret" . }}
    items: [{ key: ca.crt, path: ca.crt }]
- name: agent-tmp
  emptyDir: { sizeLimit: 16Mi }
- name: agent-state
  {{- if eq .Values.state.type "hostPath" }}
  hostPath:
    path: {{ .Values.state.hostPath.path }}
    type: DirectoryOrCreate
  {{- else if eq .Values.state.type "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ include "devicestreams-agent.stateClaim" . }}
  {{- else }}
  emptyDir: { sizeLimit: 16Mi }
  {{- end }}
{{- end }}

{{/* hostPath folders are created root-owned: give the state folder to the agent's user, nothing more. */}}
{{- define "devicestreams-agent.initContainers" -}}
{{- if and (eq .Values.state.type "hostPath") .Values.state.hostPath.fixPermissions }}
- name: state-permissions
  image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  # node, not sh: the image need not have a shell (scripts/build-image.sh's has none).
  command: [node, -e, "const fs = require('fs'), d = '/var/lib/devicestreams-agent'; fs.chownSync(d, 65532, 65532); fs.chmodSync(d, 0o700)"]
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
      add: [CHOWN, FOWNER]
    seccompProfile:
      type: RuntimeDefault
  resources:
    requests: { cpu: 10m, memory: 16Mi }
    limits: { memory: 32Mi }
  volumeMounts:
    - { name: agent-state, mountPath: /var/lib/devicestreams-agent }
{{- end }}
{{- end }}
