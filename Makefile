# otpengine — build and test entry points. `make test` is what CI runs.

CARGO ?= cargo

.PHONY: test toolchains fmt-check clippy rust-test doc quickstart

## Everything CI checks: formatting, lints, docs, and every test suite.
test: toolchains fmt-check clippy doc rust-test
	@echo "make test: all checks passed"

## Fail loudly, naming what is missing, instead of skipping a suite.
toolchains:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "ERROR: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "ERROR: rustfmt missing; run: rustup component add rustfmt" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "ERROR: clippy missing; run: rustup component add clippy" >&2; exit 1; }

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

rust-test:
	$(CARGO) test --workspace

quickstart:
	$(CARGO) run --release --example quickstart
