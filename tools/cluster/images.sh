#!/usr/bin/env bash
# make images: build the two images with Docker or Podman (CONTAINER_ENGINE=docker|podman to choose).
# Names and tags come from the chart (values.yaml image/sparkImage, Chart.yaml appVersion; IMAGE_TAG
# overrides the tag). Base images are build arguments: PYTHON_IMAGE, SPARK_IMAGE, MAVEN_IMAGE.
#   tools/cluster/images.sh [--dry-run]    (--dry-run prints the commands without running them)

# shellcheck source=tools/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
need "$ENGINE"
step "Images ($ENGINE)"
build_images
