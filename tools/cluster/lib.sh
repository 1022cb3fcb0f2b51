# shellcheck shell=bash
# Shared by images.sh, kind.sh and minikube.sh (sourced): flags, the command runner, image names, the installs.
# Image names and tags come from one place, the chart: values.yaml `image`/`sparkImage` repositories and
# Chart.yaml `appVersion` (the chart's default tag), so the chart's defaults name exactly the images built here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHART="charts/userpipeline"
RELEASE="${RELEASE:-userpipeline}"
NAMESPACE="${NAMESPACE:-userpipeline}"
SAMPLE="${SAMPLE:-manifests/samples/dev.yaml}"
CERT_MANAGER_VERSION="v1.21.1"   # the version of the CRDs the tests use (tests/fixtures/upstream/VERSIONS.md)
WAIT_TIMEOUT="${WAIT_TIMEOUT:-20m}"
DRY_RUN=0
ENGINE=""

usage() {
  sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
}

parse_args() {
  local arg
  for arg in "$@"; do
    case "$arg" in
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) echo "error: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
  done
  cd "$ROOT"
  ENGINE="$(container_engine)"
}

step() {
  printf '\n==> %s\n' "$*"
}

# Print a command, then run it; with --dry-run only print it (tests/deploy reads these lines).
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ $DRY_RUN == 0 ]]; then "$@"; fi
}

need() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  if [[ $DRY_RUN == 1 ]]; then
    echo "# not installed here (fine for --dry-run): ${missing[*]}"
    return 0
  fi
  echo "error: install ${missing[*]} first (README.md, 'Kubernetes quick start')" >&2
  exit 1
}

container_engine() {
  if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
    echo "$CONTAINER_ENGINE"
  elif command -v docker >/dev/null 2>&1; then
    echo docker
  elif command -v podman >/dev/null 2>&1; then
    echo podman
  elif [[ $DRY_RUN == 1 ]]; then
    echo docker
  else
    echo "error: neither docker nor podman is installed (or set CONTAINER_ENGINE)" >&2
    return 1
  fi
}

# --- images ---------------------------------------------------------------------------------------------

chart_app_version() {
  awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2; exit }' "$CHART/Chart.yaml"
}

# The `repository:` of a top-level block of the chart's values.yaml (image, sparkImage).
values_repository() {
  awk -v block="$1:" '
    $0 ~ /^[^ #]/ { inside = ($1 == block); next }
    inside && $1 == "repository:" { print $2; exit }' "$CHART/values.yaml"
}

image_tag() {
  echo "${IMAGE_TAG:-$(chart_app_version)}"
}

dockerfile_of() {
  case "$1" in
    image) echo images/userpipeline/Dockerfile ;;
    sparkImage) echo images/spark/Dockerfile ;;
  esac
}

# What Docker calls `userpipeline:0.1.0` podman would store as localhost/...: name it fully so that the
# archive loaded into the cluster's containerd matches the image the pods ask for.
image_ref() {
  local ref
  ref="$(values_repository "$1"):$(image_tag)"
  if [[ $ENGINE == podman ]]; then
    case "${ref%%/*}" in
      "$ref") ref="docker.io/library/$ref" ;;
      *.* | *:* | localhost) ;;
      *) ref="docker.io/$ref" ;;
    esac
  fi
  echo "$ref"
}

# --build-arg for each ARG of the Dockerfile set in the environment (PYTHON_IMAGE, SPARK_IMAGE, MAVEN_IMAGE).
build_args() {
  local name
  while read -r name; do
    if [[ -n "${!name:-}" ]]; then printf -- '--build-arg\n%s=%s\n' "$name" "${!name}"; fi
  done < <(awk -F'[ =]' '$1 == "ARG" { print $2 }' "$1")
}

build_images() {
  local block dockerfile args
  for block in image sparkImage; do
    dockerfile="$(dockerfile_of "$block")"
    mapfile -t args < <(build_args "$dockerfile")
    run "$ENGINE" build -f "$dockerfile" -t "$(image_ref "$block")" "${args[@]}" .
  done
}

# Saves each image to an archive and calls "$@" ARCHIVE (podman: kind and minikube read archives).
load_archives() {
  local block archive
  for block in image sparkImage; do
    archive="${TMPDIR:-/tmp}/userpipeline-$block.tar"
    run "$ENGINE" save --format docker-archive -o "$archive" "$(image_ref "$block")"
    run "$@" "$archive"
  done
}

# --- the platform ---------------------------------------------------------------------------------------

install_cert_manager() {
  run helm upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io \
    --version "$CERT_MANAGER_VERSION" --namespace cert-manager --create-namespace \
    --set crds.enabled=true --wait --timeout 10m
}

# The chart with its defaults (images: the ones built above) and extra flags, e.g. the ingress class.
install_chart() {
  local tags=()
  if [[ -n "${IMAGE_TAG:-}" ]]; then tags=(--set-string "image.tag=$IMAGE_TAG" --set-string "sparkImage.tag=$IMAGE_TAG"); fi
  run helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
    --wait --timeout "$WAIT_TIMEOUT" "${tags[@]}" "$@"
}

pipeline_name() {
  awk '$1 == "name:" { print $2; exit }' "$SAMPLE"
}

apply_pipeline() {
  local name
  name="$(pipeline_name)"
  run kubectl --namespace "$NAMESPACE" apply -f "$SAMPLE"
  run kubectl --namespace "$NAMESPACE" wait --for=condition=Ready "upl/$name" --timeout="$WAIT_TIMEOUT" || {
    echo "error: $name is not Ready; its conditions say which part and why:" >&2
    kubectl --namespace "$NAMESPACE" get upl "$name" -o wide >&2
    exit 1
  }
}

# Polls the dashboard Ingress until it has an address (printed), or gives up after about 5 minutes.
ingress_address() {
  local ingress="$1" address="" _
  local jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}'
  if [[ $DRY_RUN == 1 ]]; then
    run kubectl --namespace "$NAMESPACE" get ingress "$ingress" -o "jsonpath=$jsonpath" >&2
    echo "ADDRESS"
    return
  fi
  for _ in $(seq 60); do
    address="$(kubectl --namespace "$NAMESPACE" get ingress "$ingress" -o "jsonpath=$jsonpath" 2>/dev/null || true)"
    [[ -n $address ]] && break
    sleep 5
  done
  echo "$address"
}

print_dashboard() {
  local url="$1" service
  service="$(pipeline_name)-dashboard"
  echo
  echo "Pipeline $(pipeline_name) is Ready. Dashboard: $url"
  echo "Anywhere: kubectl -n $NAMESPACE port-forward svc/$service 8050:8050   # then http://127.0.0.1:8050/"
}
