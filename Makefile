# genops — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.genops-installed
CONFIG  ?= pipelines/configs/adult.yaml
PIPELINE ?= tabular-synth
RUNNER  ?= subprocess
ENV     ?= dev
export GENOPS_HOME ?= $(CURDIR)/.genops
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ASYNC_LOGGING := false

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: venv
venv: $(STAMP) ## create .venv with the pinned dependencies (constraints.txt)

.PHONY: run
run: $(STAMP) ## run the tabular-synth pipeline locally on Adult (CONFIG=..., RUNNER=docker: in the images)
	$(VENV)/bin/genops run $(PIPELINE) --config $(CONFIG) --runner $(RUNNER)

.PHONY: run-fast
run-fast: $(STAMP) ## a fast local run (3,000-row sample, 5 epochs)
	$(VENV)/bin/genops run $(PIPELINE) --config pipelines/configs/adult-fast.yaml --runner $(RUNNER)

.PHONY: run-image
run-image: $(STAMP) ## run the image-diffusion pipeline on digits (default config)
	$(VENV)/bin/genops run image-diffusion --config pipelines/configs/digits.yaml --runner $(RUNNER)

.PHONY: run-image-fast
run-image-fast: $(STAMP) ## a fast image run (60 images per class, 8 epochs)
	$(VENV)/bin/genops run image-diffusion --config pipelines/configs/digits-fast.yaml --runner $(RUNNER)

.PHONY: run-text run-text-fast
run-text: $(STAMP) ## run the text-lm pipeline on WikiText-2 (a GPT-2-style model, ~10 min of training on CPU)
	$(VENV)/bin/genops run text-lm --config pipelines/configs/wikitext.yaml

run-text-fast: $(STAMP) ## a fast text run (1,500 paragraphs, a tiny model, at most 150 steps)
	$(VENV)/bin/genops run text-lm --config pipelines/configs/wikitext-fast.yaml

.PHONY: test test-fast static
static: $(STAMP) ## lint (ruff), format check, types (mypy), import contracts (import-linter)
	$(VENV)/bin/ruff check src components pipelines tests benchmarks scripts
	$(VENV)/bin/ruff format --check src components pipelines tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: static ## the whole default test suite (static checks, unit, components, e2e, terraform)
	$(PY) -m pytest --durations=25

test-fast: static ## the inner loop: static checks, unit, component and compile tests
	$(PY) -m pytest tests/unit tests/components tests/pipelines -q

.PHONY: test-faults
test-faults: $(STAMP) ## the fault suite alone (signals and kills injected into real local runs; in make test too)
	$(PY) -m pytest tests/faults --durations=10

.PHONY: test-slow
test-slow: $(STAMP) ## the slow tests kept out of the default run (also in test-integration)
	$(PY) -m pytest -m slow

.PHONY: lint
lint: $(STAMP) ## format and lint with ruff, type-check with mypy
	$(VENV)/bin/ruff format src components pipelines tests benchmarks scripts
	$(VENV)/bin/ruff check --fix src components pipelines tests benchmarks scripts
	$(VENV)/bin/mypy

.PHONY: compile
compile: $(STAMP) ## compile pipelines to pipelines/dist/<pipeline>-<version>.yaml
	$(VENV)/bin/genops compile

.PHONY: bench
bench: $(STAMP) ## benchmarks; results written to benchmarks/results/
	$(PY) benchmarks/bench_tabular.py --out benchmarks/results/tabular.json
	$(PY) benchmarks/bench_diffusion.py --out benchmarks/results/diffusion.json
	$(PY) benchmarks/bench_serving.py --out benchmarks/results/serving.json
	$(PY) benchmarks/bench_tuning.py --out benchmarks/results/tuning.json
	$(PY) benchmarks/bench_image.py --out benchmarks/results/image.json
	$(PY) benchmarks/bench_text.py --out benchmarks/results/text.json
	$(PY) benchmarks/bench_text_precision.py --out benchmarks/results/text-precision.json
	$(PY) benchmarks/bench_generate.py --out benchmarks/results/generation.json
	$(PY) benchmarks/bench_scaling.py --out benchmarks/results/scaling.json
	$(PY) benchmarks/bench_startup.py --out benchmarks/results/startup.json

MODEL_URI ?= models:/adult-synthesizer@champion
PORT ?= 8080
.PHONY: serve serve-stop
serve: $(STAMP) ## serve a registered model on 127.0.0.1 (MODEL_URI=..., PORT=...)
	$(VENV)/bin/genops serve --model-uri $(MODEL_URI) --port $(PORT)

serve-stop: $(STAMP) ## stop the local server the deploy step started (PORT=...); fails if it was found dead
	$(PY) -m genops.core.serving.deploy stop --port $(PORT)

.PHONY: mlflow-ui
mlflow-ui: $(STAMP) ## open the MLflow UI over the local store `make run` writes
	@mkdir -p $(GENOPS_HOME)
	@echo "MLflow UI: http://127.0.0.1:5000"
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri sqlite:///$(GENOPS_HOME)/mlflow.db \
	  --default-artifact-root $(GENOPS_HOME)/mlartifacts

.PHONY: tf-plan tf-apply tf-destroy tf-test tf-checkov platform
tf-plan: ## terraform plan for ENV=dev|prod (AWS credentials + terraform/envs/$(ENV)/backend.hcl)
	terraform/scripts/tf.sh plan $(ENV)

tf-apply: ## terraform apply for ENV (asks for confirmation)
	terraform/scripts/tf.sh apply $(ENV)

tf-destroy: ## terraform destroy for ENV (asks for confirmation)
	terraform/scripts/tf.sh destroy $(ENV)

tf-test: ## offline: terraform fmt-check, validate, terraform test (mocked AWS) for dev, prod, modules
	terraform/scripts/tf.sh offline-test

tf-checkov: ## checkov over terraform/ (in its own venv, .venv-checkov)
	terraform/scripts/ensure-checkov.sh && .venv-checkov/bin/checkov -d terraform --framework terraform --compact --skip-download

platform: ## install cert-manager, KFP, KServe, autoscaler and the genops config on the ENV cluster
	k8s/scripts/platform.sh apply $(ENV)

# ---------------------------------------------------------------- images and the cluster
KFP_NAMESPACE ?= kubeflow
.PHONY: images push compile-cluster submit kfp-ui mlflow-ui-cluster
OFFLINE ?=
IMAGES  ?=
images: ## build every image (component, train-cuda, serving, mlflow), tagged <version>; OFFLINE=1: air-gapped; IMAGES="component ..." for some
	$(if $(filter 1,$(OFFLINE)),docker/offline.sh for $(IMAGES) &&) GENOPS_OFFLINE=$(OFFLINE) docker/build.sh $(IMAGES)

push: ## push the images to the ECR repositories of ENV (after make tf-apply and make images)
	docker/push.sh $(ENV) $(IMAGES)

.PHONY: test-containers
test-containers: $(STAMP) ## build the images air-gapped, run adult-fast in containers, smoke-test the servers (needs Docker; 12 min cold here)
	docker/test-containers.sh

# Images by digest: k8s/scripts/mirror_images.sh ENV writes the lock the cluster compile reads.
IMAGES_LOCK = k8s/platform/images/$(ENV).lock.json
export GENOPS_IMAGES_LOCK ?= $(if $(wildcard $(IMAGES_LOCK)),$(abspath $(IMAGES_LOCK)))

compile-cluster: $(STAMP) ## compile for the cluster (GPU, tolerations, ConfigMap/Secret, images by digest) to pipelines/dist/cluster/
	reg="$$(docker/registry.sh $(ENV))" && GENOPS_IMAGE_REGISTRY="$$reg" $(PY) -m pipelines.compile --target cluster

submit: $(STAMP) ## compile for the cluster and start a KFP run (KFP_HOST or kubeconfig; CONFIG= a local file is uploaded with its data; EXPERIMENT=, DRY_RUN=1, MAX_UPLOAD_MB=)
	reg="$$(docker/registry.sh $(ENV))" && GENOPS_IMAGE_REGISTRY="$$reg" $(VENV)/bin/genops submit $(PIPELINE) \
	  --config $(CONFIG) --env $(ENV) $(if $(EXPERIMENT),--experiment $(EXPERIMENT)) $(if $(DRY_RUN),--dry-run) \
	  $(if $(MAX_UPLOAD_MB),--max-upload-mb $(MAX_UPLOAD_MB))

kfp-ui: ## port-forward the KFP UI (and its API) to http://localhost:8080; then KFP_HOST=http://localhost:8080
	kubectl -n $(KFP_NAMESPACE) port-forward svc/ml-pipeline-ui 8080:80

mlflow-ui-cluster: ## port-forward the cluster's MLflow server to http://localhost:5000
	kubectl -n mlflow port-forward svc/mlflow 5000:5000

.PHONY: mlflow-server
mlflow-server: $(STAMP) ## MLflow server on PostgreSQL + S3 (moto), the production shape, on :5001 (FRESH=1 resets)
	$(PY) scripts/mlflow_stack.py serve --home $(GENOPS_HOME) $(if $(FRESH),--fresh)

.PHONY: test-integration
test-integration: $(STAMP) ## integration tests incl. the slow SQLite-vs-PostgreSQL timing run
	$(PY) -m pytest tests/integration -m integration

.PHONY: lock
lock: ## re-create constraints.txt from a fresh resolve of pyproject.toml
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e ".[dev]"
	( echo "# Lock file: exact versions of every package in .venv."; \
	  echo "# Regenerate with 'make lock' after changing pyproject.toml."; echo "torch==2.13.0"; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -vE '^(torch|genops)==' ) > constraints.txt
	rm -rf .venv-lock

.PHONY: clean
clean: ## remove the local MLflow store, KFP outputs and compiled pipelines
	rm -rf $(GENOPS_HOME) pipelines/dist
