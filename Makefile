# otpengine — build and test entry points. `make test` is what CI runs.

CARGO  ?= cargo
GO     ?= go
PYTHON ?= python3
CC     ?= cc
CXX    ?= c++
PREFIX ?= /usr/local

BUILD   := build
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The C ABI's major version (ffi/src/abi.rs): the shared library's soname is libotpengine.so.$(ABI).
ABI     := $(shell sed -n 's/^pub const OTPENGINE_ABI_VERSION: u32 = \([0-9]*\);/\1/p' ffi/src/abi.rs)
SONAME  := libotpengine.so.$(ABI)
DEBUG   := $(CURDIR)/target/debug
RELEASE := $(CURDIR)/target/release
VENV    := $(CURDIR)/.venv
# maturin's build hook runs `maturin` from PATH: put the venv's bin first.
VENV_RUN := PATH=$(VENV)/bin:$$PATH

# C tests: strict C11, every warning an error, sanitizers that stop at the first report.
C_STRICT := -std=c11 -Wall -Wextra -Werror -pedantic -g -Iinclude
ASAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN     := -fsanitize=thread
C_LINK   := -L$(DEBUG) -lotpengine -lpthread -Wl,-rpath,$(DEBUG)

.PHONY: help test check test-suites toolchains fmt-check tracked msrv clippy doc rust-test c-test go-test examples install install-test \
        header ffi-debug go-lib quickstart bench-ffi python-test python-install bench-python load load-smoke dudect dudect-smoke soak \
        bench bench-build bench-redis bench-redis-smoke clean fuzz fuzz-build fuzz-smoke miri plots

## Lists the targets, one line each (the first line of the comment above each).
help:
	@awk '/^## / { if (!text) text = substr($$0, 4); next } \
	     /^[A-Z_]+ *[?:]?=/ { next } \
	     /^[a-z][a-z0-9-]*:/ && text { split($$0, t, ":"); printf "  %-14s %s\n", t[1], text } \
	     { text = "" }' $(MAKEFILE_LIST)

## Everything, as CI runs it: every check and test suite, with real Redis servers.
## Formatting, lints, docs, every test suite in every language, with real Redis servers (a standalone one and a 3-node cluster on free loopback
## ports, redis-server installed from Debian's packages if missing) started before and stopped
## after, also on failure. Under it the Redis tests fail, rather than skip, without a server.
## Prints a table of the stages' times and the total at the end (scripts/stages.sh); it must
## stay under 15 minutes cold on the 2-core machine.
test: toolchains
	MAKE=$(MAKE) scripts/with-redis.sh scripts/stages.sh $(STAGES)
	@echo "make test: all checks passed"

## The stages of make test, in order; a+b runs a and b side by side (scripts/stages.sh):
## the soak and the fuzzers only run (everything they need is built by then), and a soak
## that tells a leak from a step passes beside them.
STAGES := fmt-check tracked msrv clippy doc rust-test bench-build load-smoke bench-redis-smoke dudect-smoke \
          c-test go-test examples install-test python-test fuzz-build soak+fuzz-smoke

## Every stage of make test, without the Redis servers and the stage table.
test-suites: $(STAGES)

## The daily loop, in a few minutes: formatting, lints, the core's tests without Redis.
check: fmt-check tracked msrv clippy
	$(CARGO) test -p otpengine-core

## Fail loudly, naming what is missing, instead of skipping a suite.
toolchains:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "ERROR: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "ERROR: rustfmt missing; run: rustup component add rustfmt" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "ERROR: clippy missing; run: rustup component add clippy" >&2; exit 1; }
	@command -v $(CC) >/dev/null 2>&1 || { echo "ERROR: no C compiler ($(CC)); the C suite needs gcc or clang" >&2; exit 1; }
	@command -v $(CXX) >/dev/null 2>&1 || { echo "ERROR: no C++ compiler ($(CXX)); the header's C++ check needs g++ or clang++" >&2; exit 1; }
	@command -v $(GO) >/dev/null 2>&1 || { echo "ERROR: go not found; the Go suite needs Go 1.22 or newer (https://go.dev/dl)" >&2; exit 1; }
	@command -v readelf >/dev/null 2>&1 || { echo "ERROR: readelf not found; install binutils (apt-get install binutils)" >&2; exit 1; }
	@command -v pkg-config >/dev/null 2>&1 || { echo "ERROR: pkg-config not found; install pkgconf (apt-get install pkgconf)" >&2; exit 1; }
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "ERROR: $(PYTHON) not found; the Python suite needs Python 3.10 or newer" >&2; exit 1; }
	@$(PYTHON) -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { echo "ERROR: $(PYTHON) must be 3.10 or newer with the venv module" >&2; exit 1; }

## Rust (both workspaces) and Go formatting.
fmt-check:
	$(CARGO) fmt --all -- --check
	cd fuzz && $(CARGO) fmt -- --check
	@test -z "$$(gofmt -l go examples/go)" || { echo "ERROR: gofmt would change:"; gofmt -l go examples/go; exit 1; }

## Lints, warnings as errors, with and without the core's redis feature.
## The workspace builds otpengine-core with its `redis` feature (the
## C library and the Python module turn it on); the second run lints the core as an
## embedded-only user builds it (cheap: only the core and its own dependencies again).
clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p otpengine-core --all-targets -- -D warnings

## Docs, warnings as errors.
## The examples and binaries too, so that the dependencies resolve
## with the same features as clippy's and are not checked a second time.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --lib --bins --examples --quiet

## No build products in git: no ELF file, nothing over 1 MiB outside fuzz/seeds.
tracked:
	scripts/check-tracked.sh

## The workspace's rust-version is what the locked dependencies need, and the README says so.
msrv:
	$(PYTHON) scripts/check-msrv.py

## Rust unit, integration, property and doc tests; include/otpengine.h freshness.
## The semantic suite runs on memory, Redis and a Redis Cluster.
rust-test:
	$(CARGO) test --workspace

## The C library, debug build (for the sanitizer runs).
## Programs linked with -lotpengine need libotpengine.so under its soname at run time:
## the link beside it in target/ is that name.
ffi-debug:
	$(CARGO) build -p otpengine-ffi
	ln -sf libotpengine.so $(DEBUG)/$(SONAME)

## The C library, release build (for Go, the examples and install).
go-lib:
	$(CARGO) build --release -p otpengine-ffi
	ln -sf libotpengine.so $(RELEASE)/$(SONAME)

## C tests under ASan+UBSan (API, Redis, threads) and TSan (threads); the C++ header check.
c-test: ffi-debug
	@mkdir -p $(BUILD)/c
	$(CC) $(C_STRICT) $(ASAN) ffi/tests/c/test_api.c $(C_LINK) -o $(BUILD)/c/test_api
	$(CC) $(C_STRICT) $(ASAN) ffi/tests/c/test_redis.c $(C_LINK) -o $(BUILD)/c/test_redis
	$(CC) $(C_STRICT) $(ASAN) ffi/tests/c/test_threads.c $(C_LINK) -o $(BUILD)/c/test_threads_asan
	$(CC) $(C_STRICT) $(TSAN) ffi/tests/c/test_threads.c $(C_LINK) -o $(BUILD)/c/test_threads_tsan
	$(CXX) -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude ffi/tests/c/header_cpp.cpp $(C_LINK) -o $(BUILD)/c/header_cpp
	@nm $(BUILD)/c/test_api | grep -q __asan_init || { echo "ERROR: AddressSanitizer is not linked into test_api" >&2; exit 1; }
	@nm $(BUILD)/c/test_threads_tsan | grep -q __tsan_init || { echo "ERROR: ThreadSanitizer is not linked into test_threads_tsan" >&2; exit 1; }
	$(BUILD)/c/test_api
	$(BUILD)/c/test_redis
	$(BUILD)/c/test_threads_asan
	$(BUILD)/c/test_threads_tsan
	$(BUILD)/c/header_cpp

## Go package over the static library (the default) and the shared one; go vet and
## staticcheck (installed from the Go module proxy into build/gobin); a build without cgo
## must fail, naming what it needs.
STATICCHECK := $(CURDIR)/$(BUILD)/gobin/staticcheck
go-test: go-lib $(STATICCHECK)
	cd go && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) test -race -count=1 ./...
	cd go && $(GO) test -count=1 -tags otpengine_shared ./...
	@cd go && ! CGO_ENABLED=0 $(GO) build ./... 2>$(CURDIR)/$(BUILD)/nocgo.txt \
	  || { echo "ERROR: the Go package built without cgo" >&2; exit 1; }
	@grep -q otpengine_needs_cgo $(BUILD)/nocgo.txt \
	  || { echo "ERROR: a build without cgo does not say it needs cgo:" >&2; cat $(BUILD)/nocgo.txt >&2; exit 1; }

$(STATICCHECK):
	@mkdir -p $(BUILD)/gobin
	GOBIN=$(CURDIR)/$(BUILD)/gobin $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2 \
	  || { echo "ERROR: could not install staticcheck from the Go module proxy" >&2; exit 1; }

## The README's C and Go quick starts, built and run.
examples: go-lib install-test
	cd examples/go && $(GO) run .

# A virtual environment with the build and test tools, made once; the stamp's
# name changes with the list, so an existing venv gets what was added.
# pyotp: the independent TOTP implementation the Python tests check against.
VENV_TOOLS := $(VENV)/.tools-2
$(VENV_TOOLS):
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet "maturin>=1.7,<2" "pytest>=8" "mypy>=1.11" "pyotp>=2.9"
	touch $@

## `pip install ./python`, as a user would (release build of the Rust engine).
python-install: $(VENV_TOOLS)
	$(VENV_RUN) $(VENV)/bin/pip install --quiet --no-build-isolation --force-reinstall --no-deps ./python

## pytest (warnings are errors), stubtest of the stubs, mypy --strict on typed usage.
python-test: python-install
	$(VENV)/bin/python -m pytest -q python/tests
	mkdir -p $(BUILD) && cd $(BUILD) && $(VENV)/bin/python -m mypy.stubtest otpengine
	$(VENV)/bin/mypy --strict python/tests/typed_usage.py python/otpengine/_types.py python/otpengine/aio.py
	$(VENV)/bin/python python/tests/typed_usage.py >/dev/null

## The Python benchmark (batches and single calls).
bench-python: python-install
	$(VENV)/bin/python python/bench/bench.py

## Installs libotpengine.{so,a}, otpengine.h and otpengine.pc under PREFIX.
## The shared library is installed under its soname (libotpengine.so.$(ABI)), with
## libotpengine.so a link to it for the linker: a program built now keeps needing
## ABI $(ABI), and a library of another ABI installs beside it instead of over it.
install: go-lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(RELEASE)/libotpengine.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(RELEASE)/libotpengine.so $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libotpengine.so
	install -m 644 include/otpengine.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|$(ABI)|' \
	  ffi/otpengine.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/otpengine.pc

## Installs into a scratch prefix and builds the C quick start with pkg-config, as a user would;
## checks that the installed library's soname, pkg-config's abi_version and the program's
## needed library all carry the header's OTPENGINE_ABI_VERSION.
install-test:
	rm -rf $(BUILD)/prefix
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/$(BUILD)/prefix
	PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/prefix/lib/pkgconfig sh -c \
	  '$(CC) -std=c11 -Wall -Wextra -Werror examples/c/quickstart.c $$(pkg-config --cflags --libs otpengine) -o $(BUILD)/quickstart-c'
	PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/prefix/lib/pkgconfig scripts/check-soname.sh \
	  $(BUILD)/prefix/include/otpengine.h $(BUILD)/prefix/lib $(BUILD)/quickstart-c
	LD_LIBRARY_PATH=$(CURDIR)/$(BUILD)/prefix/lib $(BUILD)/quickstart-c

## Regenerates include/otpengine.h from ffi/src/lib.rs.
header:
	OTPENGINE_WRITE_HEADER=1 $(CARGO) test -p otpengine-ffi --test header

## The Rust quick start.
quickstart:
	$(CARGO) run --release --example quickstart

## Soak (60 s): a churning key space; fails when memory leaks or an answer is off.
## 1 s codes, memory sampled every second. A leak is median RSS up by over 5% across each of
## the last two quarters (benches/src/growth.rs); one step is not. glibc is told to give large
## freed blocks back (MALLOC_MMAP_THRESHOLD_), so a table freed on a resize leaves RSS.
## SOAK_SECONDS=600 for a long run; SOAK_LEAK=N leaks N bytes per call, to see the check fail.
SOAK_SECONDS ?= 60
SOAK_LEAK    ?= 0
soak:
	$(CARGO) build --release --bin otp-load
	MALLOC_MMAP_THRESHOLD_=131072 $(RELEASE)/otp-load --seconds $(SOAK_SECONDS) --keys 200000 --ttl 1 --churn 0.3 \
	  --max-rss-growth 10 --leak-bytes-per-call $(SOAK_LEAK) --json

## Fuzzing: the C ABI with arbitrary bytes, and the engine against its reference
## model (fuzz/fuzz_targets). Built with the flags cargo-fuzz uses (libFuzzer,
## AddressSanitizer, comparison tracing), on stable through RUSTC_BOOTSTRAP, so
## neither nightly nor a cargo-fuzz install is needed; `cargo fuzz run ops` works
## too where cargo-fuzz is installed. Both targets run side by side for
## FUZZ_SECONDS (default 600); CI runs them for 60 s (fuzz-smoke).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := ops c_abi
FUZZ_TRIPLE  := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_BIN     := $(CURDIR)/fuzz/target/$(FUZZ_TRIPLE)/release
FUZZ_FLAGS   := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
                -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
                -Cllvm-args=-sanitizer-coverage-pc-table \
                -Cllvm-args=-sanitizer-coverage-trace-compares \
                --cfg fuzzing -Zsanitizer=address

## The libFuzzer targets, built once (with AddressSanitizer) for fuzz and fuzz-smoke.
fuzz-build:
	cd fuzz && RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(FUZZ_FLAGS)" $(CARGO) build --release --target $(FUZZ_TRIPLE)

## Both fuzz targets side by side for FUZZ_SECONDS (default 600).
fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BIN) $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## The CI smoke: both fuzz targets side by side for 60 s.
fuzz-smoke: fuzz-build
	fuzz/run.sh $(FUZZ_BIN) $(BUILD)/fuzz 60 $(FUZZ_TARGETS)

## Miri over the core's unit tests (needs nightly with miri; not in make test).
## Needs `rustup toolchain install nightly --component miri`. Miri runs code about 1000x slower: the property tests run
## 4 cases, and the engine-against-model test is left to the native runs and the
## `ops` fuzz target (one case of it takes minutes under Miri).
miri:
	@$(CARGO) +nightly miri --version >/dev/null 2>&1 || { echo "ERROR: Miri missing; run: rustup toolchain install nightly --component miri" >&2; exit 1; }
	MIRIFLAGS=-Zmiri-disable-isolation PROPTEST_CASES=4 $(CARGO) +nightly miri test -p otpengine-core --lib -- --skip model_tests

## The criterion suite: otpengine beside Mutex<HashMap>, dashmap and moka; threads; pieces.
bench:
	$(CARGO) bench -p otpengine-benches

## BENCHMARKS.md's plot: otp-load over threads and live keys (about 3 minutes).
## 3 runs per point, then benches/plots/throughput.png.
plots: $(VENV_TOOLS)
	$(VENV)/bin/pip install --quiet "matplotlib>=3.8"
	$(CARGO) build --release --bin otp-load
	@mkdir -p $(BUILD)/plots
	benches/plots/collect.sh $(RELEASE)/otp-load $(BUILD)/plots/runs.jsonl 4 3
	$(VENV)/bin/python benches/plots/plot.py $(BUILD)/plots/runs.jsonl benches/plots/throughput.png

## The benches compile (running them is a measurement, not a test).
bench-build:
	$(CARGO) bench --no-run -p otpengine-benches

## The main job: the load generator against the embedded engine (10 s, every core).
load:
	$(CARGO) run --release --bin otp-load

## A 2-second run whose answers must add up (otp-load exits non-zero otherwise);
## then per-key limits, and the pumping bot against an ip scope (which must hold).
load-smoke:
	@mkdir -p $(BUILD)
	$(CARGO) run --release --bin otp-load -- --seconds 2 --keys 200000 --json | tee $(BUILD)/load-smoke.txt
	@tail -n 1 $(BUILD)/load-smoke.txt | grep -q '"counts_add_up":true' || { echo "ERROR: otp-load counts do not add up" >&2; exit 1; }
	$(CARGO) run --release --bin otp-load -- --seconds 1 --keys 50000 --dist zipf --limits --ttl 1 --wrong 0.5 > $(BUILD)/load-smoke-limits.txt
	$(CARGO) run --release --bin otp-load -- --seconds 1 --scopes ip:1000 --json > $(BUILD)/load-smoke-scopes.txt

## Constant-time checks, the long run (about 35 s; dudect-smoke is the CI one).
## dudect (BENCHMARKS.md): Welch's t-test between two classes of input
## for the digest comparison and for verify, DUDECT_SAMPLES timed measurements per test (the
## default takes about 30 s), plus the two deliberately leaky controls, which must be caught.
## Fails if any test reaches |t| 4.5.
DUDECT_SAMPLES ?= 10000000
dudect:
	@mkdir -p $(BUILD)
	$(CARGO) run --release --bin otp-dudect -- --samples $(DUDECT_SAMPLES) --controls --json | tee $(BUILD)/dudect.txt
	@tail -n 1 $(BUILD)/dudect.txt | grep -q '"ok":true' || { echo "ERROR: otp-dudect saw a leak or missed a control" >&2; exit 1; }

## The CI smoke: 100,000 measurements per test (under a second) and the early-exit control.
## (The verify control's 3 ns leak is left to `make dudect`: at 100,000 its |t| fell as low as 7.5
## in 30 runs, too near 4.5 for CI; at 1,000,000 and more it is 57 and up.)
dudect-smoke:
	@mkdir -p $(BUILD)
	$(CARGO) run --release --bin otp-dudect -- --samples 100000 --json \
	  --test ct-eq-fixed-vs-random,ct-eq-first-vs-last-byte,verify-first-vs-last-char,control-early-exit | tee $(BUILD)/dudect-smoke.txt
	@tail -n 1 $(BUILD)/dudect-smoke.txt | grep -q '"ok":true' || { echo "ERROR: otp-dudect saw a leak or missed a control" >&2; exit 1; }

## The Redis backend's throughput beside redis-benchmark on the same server.
## issue + verify per second at 1, 2 and 16 callers (otp-load --redis) beside redis-benchmark GET/SET on the same server in the same run; ratios in the output.
bench-redis:
	$(CARGO) build --release --bin otp-load --bin redis-handrolled
	scripts/with-redis.sh $(PYTHON) scripts/bench-redis.py

## The CI smoke of bench-redis: one short round, small counts, on the servers make test
## started (it empties the standalone one with FLUSHALL, between stages); the figures mean
## nothing, the run proves the benchmark and the hand-rolled baseline still work.
bench-redis-smoke:
	$(CARGO) build --release --bin otp-load --bin redis-handrolled
	BENCH_ROUNDS=1 BENCH_SECONDS=0.3 BENCH_REQUESTS=2000 BENCH_KEYS=500 BENCH_MEMORY_KEYS=2000 \
	  BENCH_OUT=$(BUILD)/bench-redis-smoke.json $(PYTHON) scripts/bench-redis.py > $(BUILD)/bench-redis-smoke.txt \
	  || { cat $(BUILD)/bench-redis-smoke.txt; exit 1; }
	@tail -n 3 $(BUILD)/bench-redis-smoke.txt

## issue + verify per call from Rust, C and Go, one after the other on the same workload.
bench-ffi: go-lib
	@mkdir -p $(BUILD)
	$(CARGO) build --release --example quickbench
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -Iinclude benches/c/issue_verify.c -L$(RELEASE) -lotpengine -Wl,-rpath,$(RELEASE) -o $(BUILD)/bench-c
	$(RELEASE)/examples/quickbench
	$(BUILD)/bench-c
	cd go && $(GO) test -run '^$$' -bench IssueVerify -count 5 .

## Removes every build product (target/, build/, .venv).
clean:
	rm -rf $(BUILD) $(VENV)
	$(CARGO) clean
