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

## Every test: unit, fixtures, and integration tests against the real simulator over loopback.
test:
	$(CARGO) test --all-targets

## The simulator alone, on $(SIM_LISTEN).
sim: build
	./target/release/qqfleet sim --listen $(SIM_LISTEN)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
