# The developer's interface: `make serve` runs the gateway, `make test` runs everything.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(BIN):$(PATH)

.PHONY: serve test build prereqs lint rust-test py-test bench bench-control clean

serve: build
	muxgate serve $(ARGS)

test: build lint rust-test py-test

prereqs:
	@scripts/check-prereqs

$(VENV)/.created: pyproject.toml | prereqs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'maturin>=1.8,<2'
	touch $@

# Release build (fat LTO): the gateway and the benchmark must run the optimized extension.
build: $(VENV)/.created
	$(BIN)/maturin develop --release --extras dev --quiet

lint:
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --all-targets --features python -- -D warnings
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest muxgate._native

rust-test:
	cargo test

py-test:
	@scripts/check-prereqs --test
	$(BIN)/pytest

bench: build
	$(BIN)/python bench/run.py $(ARGS)

bench-control: build
	$(BIN)/python bench/control.py $(ARGS)

clean:
	rm -rf $(VENV) target .muxgate
