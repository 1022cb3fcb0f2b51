#!/usr/bin/env bash
# make kind: from nothing to a running pipeline on kind (docs/kubernetes.md).
# Creates the kind cluster (manifests/kind-cluster.yaml), starts cloud-provider-kind (the Ingress), installs
# cert-manager, builds and loads the images, `helm install --wait`s the chart, applies a UserPipeline
# (SAMPLE, default manifests/samples/dev.yaml), waits until it is Ready and prints the dashboard's URL.
# Rerunning it is safe. Needs docker or podman, kind, kubectl, helm >= 3.19.
#   tools/cluster/kind.sh [--dry-run]    (--dry-run prints the commands without running them)

# shellcheck source=tools/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KIND_CONFIG="manifests/kind-cluster.yaml"
CLUSTER="${KIND_CLUSTER:-userpipeline}"
CLOUD_PROVIDER_KIND_IMAGE="registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.11.1"
parse_args "$@"
need "$ENGINE" kind kubectl helm
if [[ $ENGINE == podman ]]; then export KIND_EXPERIMENTAL_PROVIDER=podman; fi

step "Images ($ENGINE)"
build_images

step "kind cluster $CLUSTER"
if [[ $DRY_RUN == 0 ]] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "exists"
else
  run kind create cluster --name "$CLUSTER" --config "$KIND_CONFIG" --wait 5m
fi
run kubectl config use-context "kind-$CLUSTER"   # everything below talks to this cluster
# One node: let cloud-provider-kind route to the control plane (kubeadm excludes it by default).
run kubectl label node "$CLUSTER-control-plane" node.kubernetes.io/exclude-from-external-load-balancers- || true

step "cloud-provider-kind (gives the dashboard's Ingress an address)"
if [[ $ENGINE == docker ]]; then
  if [[ $DRY_RUN == 0 ]] && docker container inspect cloud-provider-kind >/dev/null 2>&1; then
    run docker start cloud-provider-kind
  else
    run docker run -d --name cloud-provider-kind --restart unless-stopped --network host \
      -v /var/run/docker.sock:/var/run/docker.sock "$CLOUD_PROVIDER_KIND_IMAGE"
  fi
else
  echo "With podman, run 'cloud-provider-kind' yourself in another terminal (kind's Ingress docs)."
fi

step "cert-manager $CERT_MANAGER_VERSION (K8ssandra's webhook certificates)"
install_cert_manager

step "Load the images into kind"
if [[ $ENGINE == docker ]]; then
  run kind load docker-image --name "$CLUSTER" "$(image_ref image)" "$(image_ref sparkImage)"
else
  load_archives kind load image-archive --name "$CLUSTER"
fi

step "helm install $RELEASE"
install_chart --set dashboard.ingress.className=cloud-provider-kind

step "UserPipeline $(pipeline_name)"
apply_pipeline

step "Dashboard"
address="$(ingress_address "$(pipeline_name)-dashboard")"
print_dashboard "http://${address:-<no address yet: is cloud-provider-kind running?>}/"
