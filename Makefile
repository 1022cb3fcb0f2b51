# userpipeline — every target bootstraps what it needs (cached in ~/.cache/userpipeline).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SPEC ?= manifests/samples/local.yaml
PYTEST_ARGS ?=
CHAOS_ARGS ?=
# Passed to the cluster scripts, e.g. CLUSTER_ARGS=--dry-run (print the commands without running them).
CLUSTER_ARGS ?=
# Two workers, one test file per worker at a time: most tests wait on real services, so overlapping them
# pays on 2 cores; the files that take minutes start first (tests/conftest.py). PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2
# Every bootstrap step but `images`: the project's images (podman, minutes per source change) are built only
# for `make test`, whose real-node tests run them (the chart's pods: the application and the Spark image).
BOOTSTRAP_STEPS := venv,jars,ferretdb,kube,node,helm,checkov,browser
TEST_IMAGES := userpipeline,userpipeline-spark
# Never put the clone's root on sys.path: its `operator/` folder would shadow the standard library.
export PYTHONSAFEPATH := 1

.PHONY: help bootstrap up down status test bench crd clean images kind minikube chaos

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap:  ## Fetch/build everything (idempotent, cached by version)
	@$(PYTHON) tools/bootstrap.py --only $(BOOTSTRAP_STEPS)

up: bootstrap  ## Run the whole pipeline locally; dashboard at http://localhost:8050
	@$(VENV)/bin/userpipeline up -f $(SPEC)

down:  ## Stop everything (data stays in .userpipeline/)
	@$(VENV)/bin/userpipeline down

status:  ## Show services, pids, ports and pipeline progress
	@$(VENV)/bin/userpipeline status

test: bootstrap  ## Run the test suite against real services
	@USERPIPELINE_IMAGES=$(TEST_IMAGES) $(PYTHON) tools/bootstrap.py --only images
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: bootstrap  ## Run the benchmarks (numbers and ratios against same-run baselines)
	@for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

images:  ## Build the images with Docker or Podman (names and tag from the chart; docs/kubernetes.md)
	@bash tools/cluster/images.sh $(CLUSTER_ARGS)

kind:  ## From nothing to a running pipeline on kind: cluster, cert-manager, images, chart, a pipeline
	@bash tools/cluster/kind.sh $(CLUSTER_ARGS)

minikube:  ## The same on minikube (ingress addon); CLUSTER_ARGS=--dry-run prints the commands
	@bash tools/cluster/minikube.sh $(CLUSTER_ARGS)

chaos: bootstrap  ## Chaos soak of the local pipeline (default 10 min; CHAOS_ARGS="--minutes 3")
	@$(PY) tests/chaos/soak.py $(CHAOS_ARGS)

crd: bootstrap  ## Regenerate the UserPipeline CRD from the spec model
	@$(PY) -m userpipeline.operator.crd > charts/userpipeline/crds/userpipelines.userpipeline.io.yaml

clean:  ## Remove the virtual environment (the cache outside the clone stays)
	rm -rf $(VENV)
