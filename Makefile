# qqfleet — the two commands for a fresh machine are `make run` and `make test`.
CARGO ?= cargo
LISTEN ?= 127.0.0.1:9400
SIM_LISTEN ?= 127.0.0.1:8900

.PHONY: run test sim lint fmt bench build

build:
	$(CARGO) build --release --bin qqfleet

## The demo: the fleet in accounts/ against the embedded simulator, with a demo phone that
## scans every QR code and simulated friends who talk to the bots. Ctrl-C stops it.
run: build
	./target/release/qqfleet run --sim --accounts accounts --data data --listen $(LISTEN)

## Every test: unit, fixtures, property tests, and integration tests that run the real binary
## against the real simulator over loopback, a real Prometheus, and third-party WebQQ clients
## (their pinned venv is installed first by fidelity-deps: the only step that reaches PyPI).
## Examples (the benchmarks) are built, not run.
test: fidelity-deps deploy-deps onebot-deps
	$(CARGO) build --examples
	$(CARGO) test --lib --bins --tests

## The simulator alone, on $(SIM_LISTEN).
sim: build
	./target/release/qqfleet sim --listen $(SIM_LISTEN)

## Benchmarks (release build, loopback only, bounded): the simulator holding 10,000 sessions
## with a parked poll each, then the fleet at each size of BENCH_SIZES in one process against a
## simulator in another (cold start, memory and idle CPU per account, echo round trips,
## /metrics, restart without a scan) and qqbot of the fidelity venv for comparison. Writes
## target/bench/report.json, target/bench/*.png and docs/PERFORMANCE.md. A quick run:
## `make bench BENCH_SIZES=1000` (about 3 minutes).
BENCH_SIZES ?= 100,1000,5000,10000
BENCH_SESSIONS ?= 10000
bench: bench-build fidelity-deps
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	python3 scripts/sim_load.py --binary target/release/qqfleet --sessions $(BENCH_SESSIONS) && \
	QQFLEET_SCALE_SIZES=$(BENCH_SIZES) QQFLEET_SCALE_BIN=target/release/qqfleet \
	  target/release/examples/fleet_scale

## The binary and the benchmark programs in one release build: built apart, the examples'
## dev-dependencies change the feature set and every dependency is compiled twice.
.PHONY: bench-build
bench-build:
	$(CARGO) build --release --bin qqfleet --examples

## The chaos soak (issue 11): SOAK_ACCOUNTS accounts (1,000) for SOAK_SECS seconds (600)
## against the simulator in its own process, with poll faults, kicks, expiries, a 20 s outage
## and 20 messages a second; first the requests sent during a 20 s outage with and without
## the outage breaker. Report: target/soak/report.json (summary in docs/RELIABILITY.md).
## CI runs a 100-account, 60 s version in `make test` (tests/chaos_soak.rs).
SOAK_SECS ?= 600
SOAK_ACCOUNTS ?= 1000
.PHONY: soak
soak: bench-build
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	SOAK_SECS=$(SOAK_SECS) SOAK_ACCOUNTS=$(SOAK_ACCOUNTS) QQFLEET_SOAK_BIN=target/release/qqfleet \
	  target/release/examples/chaos_soak
## The crash matrix, long version: CRASH_ROUNDS rounds of a SIGKILL (or an abort at a named
## crash point) at each of the 8 points of issue 11, each followed by a restart on the same
## data (`make test` runs one round).
CRASH_ROUNDS ?= 3
.PHONY: crash
crash:
	CRASH_ROUNDS=$(CRASH_ROUNDS) $(CARGO) test --test sendsafe crash_matrix -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The third-party WebQQ clients of tests/fidelity_thirdparty.rs, in a venv under target/
## (pinned in tests/fidelity/requirements.txt). The only step that reaches PyPI; a no-op
## when the venv is up to date. CI runs it before `make test`.
FIDELITY_VENV := target/fidelity-venv
PYTHON3 ?= python3

.PHONY: fidelity-deps
fidelity-deps: $(FIDELITY_VENV)/.installed

$(FIDELITY_VENV)/.installed: tests/fidelity/requirements.txt
	rm -rf $(FIDELITY_VENV)
	$(PYTHON3) -m venv $(FIDELITY_VENV)
	$(FIDELITY_VENV)/bin/python -m pip install --disable-pip-version-check --no-input -q --no-deps -r tests/fidelity/requirements.txt
	$(FIDELITY_VENV)/bin/python -m pip check -q --disable-pip-version-check
	touch $@

## The Kubernetes manifest validator of tests/deploy.rs (kubernetes-validate, with the
## Kubernetes schemas bundled, so the check itself runs offline), pinned in
## deploy/requirements.txt, in a venv under target/. Reaches PyPI only when the pins change.
DEPLOY_VENV := target/deploy-venv

.PHONY: deploy-deps
deploy-deps: $(DEPLOY_VENV)/.installed

$(DEPLOY_VENV)/.installed: deploy/requirements.txt
	rm -rf $(DEPLOY_VENV)
	$(PYTHON3) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --disable-pip-version-check --no-input -q --no-deps -r deploy/requirements.txt
	$(DEPLOY_VENV)/bin/python -m pip check -q --disable-pip-version-check
	touch $@

## NoneBot2 + its OneBot adapter for tests/onebot_nonebot.rs, in a venv under target/ (pinned in
## tests/onebot/requirements.txt, installed without resolving, then checked). A no-op when the
## venv is up to date. `make test` runs it first.
ONEBOT_VENV := target/onebot-venv

.PHONY: onebot-deps
onebot-deps: $(ONEBOT_VENV)/.installed

$(ONEBOT_VENV)/.installed: tests/onebot/requirements.txt
	rm -rf $(ONEBOT_VENV)
	$(PYTHON3) -m venv $(ONEBOT_VENV)
	$(ONEBOT_VENV)/bin/python -m pip install --disable-pip-version-check --no-input -q --no-deps -r tests/onebot/requirements.txt
	$(ONEBOT_VENV)/bin/python -m pip check -q --disable-pip-version-check
	touch $@
