# The developer's interface: `make serve` runs the gateway, `make test` runs everything.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(BIN):$(PATH)

.PHONY: serve test build lock prereqs lint rust-test py-test bench bench-control clean

serve: build
	muxgate serve $(ARGS)

test: build lint rust-test py-test

prereqs:
	@scripts/check-prereqs

# Every Python dependency, runtime and dev, comes from the hashed lock: a fresh venv gets exactly
# these versions. A changed lock rebuilds the venv from scratch so nothing stale survives.
# `make lock` re-resolves it (a deliberate upgrade: commit it on its own, tested).
LOCK := requirements.lock
NATIVE_SOURCES := Cargo.toml Cargo.lock pyproject.toml $(shell find rust -name '*.rs')

$(VENV)/.locked: $(LOCK) | prereqs
	@echo "muxgate: creating $(VENV) from $(LOCK)"
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	@touch $@

# Release build (fat LTO): the gateway and the benchmark must run the optimized extension.
# Quiet when nothing changed; cargo shows its progress (stderr) when something did, while
# pip's report on the already-locked dependencies (stdout) is left out.
$(VENV)/.native: $(VENV)/.locked $(NATIVE_SOURCES)
	@echo "muxgate: building the native extension (release; the first build takes a few minutes)"
	@$(BIN)/maturin develop --release >/dev/null
	@touch $@

build: $(VENV)/.native

lock: $(VENV)/.locked
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header --upgrade -o $(LOCK)

# Python test processes: the suite mostly waits on gateways, sockets and Redis, so three share
# two cores well (a file's tests stay together: its gateways start once). 0 runs one process.
PYTEST_WORKERS ?= 3

lint:
	@echo "== lint and type checks"
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --all-targets --features python -- -D warnings
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest muxgate._native

rust-test:
	@echo "== Rust tests"
	cargo test

py-test:
	@scripts/check-prereqs --test
	@echo "== Python tests ($(PYTEST_WORKERS) workers)"
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: build
	$(BIN)/python bench/run.py $(ARGS)

bench-control: build
	$(BIN)/python bench/control.py $(ARGS)

clean:
	rm -rf $(VENV) target .muxgate
