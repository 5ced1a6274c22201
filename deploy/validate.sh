#!/usr/bin/env bash
# Validates the deployment files with real validators. Needs the package registries (Debian, npm) the first
# time, so it is not part of `dotnet test`; the dotnet tests (tests/Serving.Deploy.Tests) keep the files
# true to the server's code.
#
#   deploy/validate.sh            install what is missing, then run every validator
#
# What runs:
#   helm chart rendering   helm lint + helm template when helm is installed; otherwise the chart is rendered
#                          by the deploy tests' Go-template renderer (artifacts/deploy/chart-*.yaml)
#   yamllint               every YAML file (chart templates excepted: they are templates, not YAML)
#   kubernetes schemas     deploy/kubernetes, its kustomize build, and the rendered chart, against the
#                          Kubernetes OpenAPI schemas (kubernetes-models, npm) plus a strict unknown-field
#                          check (tsc over the same models' types)
#   promtool               deploy/compose/prometheus/prometheus.yml (Debian's prometheus package)
#   docker-compose config  the compose file, alone and with the GPU override (Debian's docker-compose)
#   grafana schema         the dashboard against @grafana/schema's Dashboard type (tsc)
#   dockerfilelint,        the Dockerfile (npm)
#   dockerfile-utils lint
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/deploy/validate
out=$tools/.out
ran=()

need_apt() {
  local missing=()
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}"); done
  if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

step() { echo; echo "== $1"; }

need_apt yamllint:yamllint promtool:prometheus docker-compose:docker-compose
(cd "$tools" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
mkdir -p "$out" artifacts/deploy

step "helm chart: render"
chart=deploy/helm/serving
rm -f artifacts/deploy/chart-*.yaml   # only this run's renders are validated below
if command -v helm >/dev/null; then
  helm lint "$chart"
  helm template serving "$chart" > artifacts/deploy/chart-default.yaml
  ran+=("helm lint + helm template")
else
  dotnet test tests/Serving.Deploy.Tests --filter "FullyQualifiedName~Helm.ChartTests" --nologo -v q
  ran+=("chart rendered by the deploy tests' Go-template renderer (no helm here)")
fi
rendered=(artifacts/deploy/chart-*.yaml)

step "yamllint"
yamllint -c "$tools/yamllint.yaml" deploy/kubernetes deploy/compose deploy/helm/serving/Chart.yaml \
  deploy/helm/serving/values.yaml "${rendered[@]}"
ran+=("yamllint")

step "kubernetes schemas (deploy/kubernetes, kustomize build, rendered chart)"
: > "$out/kustomized.yaml"
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/kubernetes > "$out/kustomized.yaml"
  ran+=("kubectl kustomize")
fi
node "$tools/kubernetes.mjs" "$out" deploy/kubernetes/*.yaml "$out/kustomized.yaml" "${rendered[@]}"
ran+=("kubernetes-models schema validation + strict field check (tsc)")

step "promtool"
promtool check config deploy/compose/prometheus/prometheus.yml
ran+=("promtool check config")

step "docker-compose config"
MODEL_DIR=/tmp docker-compose -f deploy/compose/compose.yaml config -q
MODEL_DIR=/tmp docker-compose -f deploy/compose/compose.yaml -f deploy/compose/compose.gpu.yaml config -q
ran+=("docker-compose config")

step "grafana dashboard schema"
node "$tools/grafana.mjs" "$out" deploy/compose/grafana/dashboards/*.json
ran+=("@grafana/schema Dashboard type check (tsc)")

step "Dockerfile linters"
"$tools/node_modules/.bin/dockerfilelint" -c "$tools" Dockerfile
"$tools/node_modules/.bin/dockerfile-utils" lint Dockerfile
ran+=("dockerfilelint" "dockerfile-utils lint")

echo
echo "validators that ran:"
printf '  - %s\n' "${ran[@]}"
