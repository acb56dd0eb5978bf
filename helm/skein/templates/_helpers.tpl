{{/* Names, labels and the pipeline's wiring, shared by every template. */}}

{{- define "skein.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "skein.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "router"). */}}
{{- define "skein.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "skein.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "skein.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "skein.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Pod and container security: non-root, read-only root filesystem, no capabilities. */}}
{{- define "skein.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "skein.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The layer range of every stage, checked to cover 0..model.layers in order. */}}
{{- define "skein.layerRanges" -}}
{{- $stages := int .Values.pipeline.stages -}}
{{- $layers := int .Values.model.layers -}}
{{- $ranges := list -}}
{{- if .Values.pipeline.layerSplit -}}
{{- if ne (len .Values.pipeline.layerSplit) $stages -}}
{{- fail (printf "pipeline.layerSplit has %d ranges for %d stages" (len .Values.pipeline.layerSplit) $stages) -}}
{{- end -}}
{{- $next := 0 -}}
{{- range $i, $r := .Values.pipeline.layerSplit -}}
{{- $parts := splitList ":" $r -}}
{{- $first := int (index $parts 0) -}}
{{- $last := int (index $parts 1) -}}
{{- if or (ne $first $next) (le $last $first) -}}
{{- fail (printf "pipeline.layerSplit[%d] is %s: stage ranges must follow each other from layer 0 without gaps, each non-empty" $i $r) -}}
{{- end -}}
{{- $next = $last -}}
{{- $ranges = append $ranges $r -}}
{{- end -}}
{{- if ne $next $layers -}}
{{- fail (printf "pipeline.layerSplit ends at layer %d but the model has %d layers (model.layers)" $next $layers) -}}
{{- end -}}
{{- else -}}
{{- if gt $stages $layers -}}
{{- fail (printf "pipeline.stages (%d) is more than the model's layers (%d)" $stages $layers) -}}
{{- end -}}
{{- range $i := until $stages -}}
{{- $ranges = append $ranges (printf "%d:%d" (div (mul $i $layers) $stages) (div (mul (add $i 1) $layers) $stages)) -}}
{{- end -}}
{{- end -}}
{{- join "," $ranges -}}
{{- end -}}

{{/* A stage's StatefulSet (and headless Service) name: `worker-sN` for the main model,
     `worker-mM-sN` for extraModels[M-1] (.root.Values.modelIndex). */}}
{{- define "skein.stageName" -}}
{{- printf "%s-%s" (include "skein.fullname" .root) (include "skein.stageComponent" .) -}}
{{- end -}}

{{/* A stage's component label (and the end of its name): (dict "root" $ "stage" N). */}}
{{- define "skein.stageComponent" -}}
{{- $m := int (default 0 .root.Values.modelIndex) -}}
{{- if eq $m 0 -}}
{{- printf "worker-s%d" (int .stage) -}}
{{- else -}}
{{- printf "worker-m%d-s%d" $m (int .stage) -}}
{{- end -}}
{{- end -}}

{{/* The root context one model's workers are rendered with: the chart's, with .Values.model
     and .Values.pipeline of model (dict "top" $ "index" M) (0: `model`; M: extraModels[M-1],
     whose pipeline defaults to the main stage and replica counts and an even split) and
     .Values.modelIndex. Rendered as the name of a key set on .top's scratch dict, since a
     template can only return text: use `index $.skeinModelRoots M` after including it. */}}
{{- define "skein.buildModelRoots" -}}
{{- $top := . -}}
{{- $roots := list -}}
{{- range $m := until (int (add 1 (len (default list $top.Values.extraModels)))) -}}
{{- $vals := deepCopy $top.Values -}}
{{- if gt $m 0 -}}
{{- $extra := index $top.Values.extraModels (sub $m 1) -}}
{{- $p := default dict $extra.pipeline -}}
{{- $_ := set $vals "model" (omit $extra "pipeline") -}}
{{- $_ := set $vals "pipeline" (dict "stages" (default $top.Values.pipeline.stages $p.stages) "replicas" (default $top.Values.pipeline.replicas $p.replicas) "layerSplit" (default list $p.layerSplit)) -}}
{{- end -}}
{{- $_ := set $vals "modelIndex" $m -}}
{{- $roots = append $roots (dict "Values" $vals "Release" $top.Release "Chart" $top.Chart "Capabilities" $top.Capabilities "Template" $top.Template "Files" $top.Files) -}}
{{- end -}}
{{- $_ := set $top "skeinModelRoots" $roots -}}
{{- end -}}

{{/* The router's --pipeline flags: one model, its stage-0 addresses; several, NAME=… each. */}}
{{- define "skein.pipelineFlags" -}}
{{- include "skein.buildModelRoots" . -}}
{{- $roots := .skeinModelRoots -}}
{{- range $root := $roots }}
{{- if eq (len $roots) 1 }}
- --pipeline={{ include "skein.pipelineHeads" $root }}
{{- else }}
- --pipeline={{ $root.Values.model.name }}={{ include "skein.pipelineHeads" $root }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Stage 0 of every pipeline replica, for the router's --pipeline. */}}
{{- define "skein.pipelineHeads" -}}
{{- $root := . -}}
{{- $name := include "skein.stageName" (dict "root" $root "stage" 0) -}}
{{- $heads := list -}}
{{- range $r := until (int .Values.pipeline.replicas) -}}
{{- $heads = append $heads (printf "%s-%d.%s.%s.svc:7730" $name $r $name $root.Release.Namespace) -}}
{{- end -}}
{{- join "," $heads -}}
{{- end -}}

{{- define "skein.storeAddress" -}}
{{- printf "%s-store:7720" (include "skein.fullname" .) -}}
{{- end -}}
