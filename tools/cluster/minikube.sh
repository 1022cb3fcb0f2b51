#!/usr/bin/env bash
# make minikube: from nothing to a running pipeline on minikube (docs/kubernetes.md).
# Starts minikube (MINIKUBE_CPUS, MINIKUBE_MEMORY) with the ingress addon, installs cert-manager, builds
# and loads the images, `helm install --wait`s the chart, applies a UserPipeline (SAMPLE, default
# manifests/samples/dev.yaml), waits until it is Ready and prints the dashboard's URL.
# Rerunning it is safe. Needs docker or podman, minikube, kubectl, helm >= 3.19.
#   tools/cluster/minikube.sh [--dry-run]    (--dry-run prints the commands without running them)

# shellcheck source=tools/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PROFILE="${MINIKUBE_PROFILE:-minikube}"
parse_args "$@"
need "$ENGINE" minikube kubectl helm

step "Images ($ENGINE)"
build_images

step "minikube ($PROFILE) with the ingress addon"
run minikube start --profile "$PROFILE" --driver "$ENGINE" --cpus "${MINIKUBE_CPUS:-4}" --memory "${MINIKUBE_MEMORY:-10g}"
run minikube addons enable ingress --profile "$PROFILE"
run kubectl config use-context "$PROFILE"   # everything below talks to this cluster

step "cert-manager $CERT_MANAGER_VERSION (K8ssandra's webhook certificates)"
install_cert_manager

step "Load the images into minikube"
if [[ $ENGINE == docker ]]; then
  for block in image sparkImage; do run minikube image load --profile "$PROFILE" "$(image_ref "$block")"; done
else
  load_archives minikube image load --profile "$PROFILE"
fi

step "helm install $RELEASE"
install_chart --set dashboard.ingress.className=nginx

step "UserPipeline $(pipeline_name)"
apply_pipeline

step "Dashboard"
if [[ $DRY_RUN == 1 ]]; then
  run minikube ip --profile "$PROFILE"
  ip="MINIKUBE_IP"
else
  ip="$(minikube ip --profile "$PROFILE")"
fi
print_dashboard "http://$ip/   (macOS/Windows: run 'minikube tunnel', then http://127.0.0.1/)"
