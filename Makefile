# Two commands for a fresh Debian/Ubuntu machine: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test deps build lint bench

# Install what a fresh machine lacks (GDAL headers for the gdal crate, pkg-config, a C compiler).
deps:
	@if ! pkg-config --exists gdal sqlite3 2>/dev/null || ! command -v cc >/dev/null; then \
		echo "installing libgdal-dev, pkg-config, build-essential"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libgdal-dev libsqlite3-dev gdal-bin pkg-config build-essential >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from rustup.rs"; exit 1; }

build: deps
	$(CARGO) build --release --bin lulc

# The main job on the embedded default (no internet needed).
demo: build
	./scripts/demo.sh

test: deps
	./scripts/test.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) check --features ndarray   # the other burn backend still builds

bench: build
	./benches/run.sh
