# liverecall — build, test, benchmark and demo targets.
# Benchmarks print tables for people and, as their LAST line, one JSON object
# with the headline figures. QUICK=1 runs a minutes-long, reduced-scale version.

GO        ?= go
SHELL     := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PKGS      := ./...
QUICK     ?=
BENCHOUT  := .bench
export QUICK

.PHONY: all build tools soak test test-short vet fmt-check tidy-check lint-openapi deps postgres bench bench-quick \
        bench-index bench-index-curve bench-index-build bench-events bench-embed bench-recall bench-quality bench-experiments bench-rerank bench-merge bench-scale bench-stores demo clean

all: build

deps:
	$(GO) mod download

# Says so before compiling when bin/liverecall is missing or older than a
# source file (the first build takes a while; later ones are cached).
build: deps
	@if [ ! -x bin/liverecall ] || [ -n "$$(find . \( -path ./bin -o -path ./.git -o -name node_modules \) -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum -o -path './migrations/*' -o -path './api/static/*' \) -newer bin/liverecall -print -quit)" ]; then \
	  echo "compiling bin/liverecall (the first build takes a while; later ones are cached) ..."; \
	fi
	$(GO) build -buildvcs=auto -o bin/liverecall ./cmd/liverecall

# Redocly's CLI, the OpenAPI linter of `make lint-openapi`: installed with
# npm, at a pinned version, into .tools/ (gitignored), only when that
# version is missing. Node.js and npm come from Debian's packages when the
# machine has none (1.x runs on Debian 12's Node.js 18 as well as on 20;
# 2.x needs 20.19 or later). Only the tests use it; the service never
# downloads anything.
REDOCLY_VERSION := 1.34.20
TOOLS_DIR       := .tools
REDOCLY         := $(TOOLS_DIR)/node_modules/.bin/redocly
REDOCLY_STAMP   := $(TOOLS_DIR)/redocly-$(REDOCLY_VERSION).stamp
$(REDOCLY_STAMP):
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "installing Debian packages: nodejs npm"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; \
	fi
	@echo "installing @redocly/cli@$(REDOCLY_VERSION) into $(TOOLS_DIR)/"
	@mkdir -p $(TOOLS_DIR)
	npm install --prefix $(TOOLS_DIR) --no-audit --no-fund --loglevel=error --save-exact @redocly/cli@$(REDOCLY_VERSION)
	@rm -f $(TOOLS_DIR)/redocly-*.stamp && touch $@

# Debian packages the tests use: kcat (an independent Kafka client for the
# interop test) and chromium (the operator console's browser tests); and
# python3-hnswlib with python3-numpy, the reference C++ HNSW that
# `make bench-index` measures beside ours (through Debian's /usr/bin/python3;
# without them its rows say "not installed"). Installed only when missing.
DEB_TOOLS := kcat:kcat chromium:chromium
DEB_PYTHON := hnswlib:python3-hnswlib numpy:python3-numpy
tools: $(REDOCLY_STAMP)
	@missing=""; for t in $(DEB_TOOLS); do cmd=$${t%%:*}; pkg=$${t##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	for t in $(DEB_PYTHON); do mod=$${t%%:*}; pkg=$${t##*:}; \
	  /usr/bin/python3 -c "import $$mod" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The OpenAPI document must pass Redocly's recommended rules (redocly.yaml)
# with no error and no warning.
lint-openapi: $(REDOCLY_STAMP)
	@rc=0; out=$$(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
	  $(REDOCLY) lint --config redocly.yaml --format=stylish api/static/openapi.json 2>&1) || rc=$$?; \
	if [ $$rc -ne 0 ] || grep -qE '^ +[0-9]+:[0-9]+ +(error|warning) |You have [0-9]+ warning' <<<"$$out"; then \
	  grep -v '[║╔╚]' <<<"$$out"; echo "redocly lint: api/static/openapi.json has the problems above"; exit 1; \
	fi; \
	echo "redocly lint: api/static/openapi.json: no errors, no warnings"

# Starts the local PostgreSQL cluster of this kind of machine when it is not
# answering (no-op when DATABASE_URL points elsewhere or it is already up).
postgres:
	@if [ -z "$$DATABASE_URL" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  echo "starting local PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# go.mod and go.sum must be what `go mod tidy` makes of them (direct
# requirements in the first block, no unused ones). The check may fetch from
# the module proxy the few modules that only dependencies' tests import
# (`go mod download` does not); it fails, naming the cause, either when the
# files are not tidy or when it cannot run.
tidy-check: deps
	@rc=0; out=$$($(GO) mod tidy -diff 2>&1) || rc=$$?; \
	if [ $$rc -ne 0 ]; then \
	  if grep -q '^diff current/' <<<"$$out"; then echo "go.mod/go.sum are not tidy; run 'go mod tidy' and commit the result:"; \
	  else echo "could not check that go.mod is tidy ('go mod tidy -diff' failed):"; fi; \
	  echo "$$out"; exit 1; \
	fi

# The test command of README.md and CI: vet, format, go.mod tidiness, then
# every test with the race detector (packages run two at a time on this
# 2-core machine).
test: deps tools postgres vet fmt-check tidy-check lint-openapi
	$(GO) test -race -p 2 -timeout 20m -count=1 $(PKGS)
	@# Alone, after everything else: stops and starts the local PostgreSQL
	@# server during an index reload (skipped when DATABASE_URL points at
	@# another server, which this machine cannot restart).
	@if [ -z "$$DATABASE_URL" ]; then \
	  LIVERECALL_PG_RESTART=1 $(GO) test -race -count=1 -timeout 5m -run '^TestPostgresRestartDuringReload$$' ./cmd/liverecall; \
	else echo "TestPostgresRestartDuringReload not run: DATABASE_URL is set (a server this machine does not manage)"; fi

test-short: deps
	$(GO) test -short -count=1 $(PKGS)

bench-index:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-index | tee $(BENCHOUT)/index.txt

# The recall-vs-µs curve of ours and hnswlib (python3-hnswlib, `make tools`)
# on CURVE_N low-rank vectors, ef 16…256, alternating rounds.
CURVE_N ?= 200000
bench-index-curve:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-index -curve $(CURVE_N) -rounds 3 | tee $(BENCHOUT)/index-curve.txt

# The build time and memory per vector of ours and hnswlib on BUILD_N
# uniform (iid) and low-rank vectors, every core.
BUILD_N ?= 1000000
bench-index-build:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-index -build $(BUILD_N) | tee $(BENCHOUT)/index-build.txt

bench-events:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-events | tee $(BENCHOUT)/events.txt

bench-embed:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-embed | tee $(BENCHOUT)/embed.txt

bench-recall:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-recall | tee $(BENCHOUT)/recall.txt

bench-quality:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-quality | tee $(BENCHOUT)/quality.txt

# Online experiments on the simulator (issue 18): two recommend.Service
# arms (the trained models vs the same with MF's and NCF's streamer vectors
# shuffled) routed by experiment.ArmOf on a held-out day, users' responses
# from sim.PageModel; the A/A false-positive rate over 1,000 salts (QUICK=1:
# 500), the A/B's p, and the users A/B and team-draft interleaving need to
# reach p < 0.05 in 80% of repetitions.
bench-experiments:
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-experiments | tee $(BENCHOUT)/experiments.txt

# Rerank of 100 candidates in-process (rerank/bench_test.go): the logistic
# weights, and gradient-boosted trees of 4 heads x 50 and x 200 trees of 31
# leaves; p50 and p99 per call (wall clock) and CPU time per call. Not part
# of `make bench` (its output is go test's, not a report table).
bench-rerank:
	@mkdir -p $(BENCHOUT)
	$(GO) test -run '^$$' -bench '^BenchmarkRank100' -benchtime 3000x ./rerank/ | tee $(BENCHOUT)/rerank.txt

# recall's merge alone (BenchmarkMerge): a user with a large shown log and a
# fresh one, six rounds each (docs/DESIGN.md, README "How it scales").
bench-merge:
	@mkdir -p $(BENCHOUT)
	$(GO) test -run '^$$' -bench '^BenchmarkMerge' -benchtime 2s -count 6 ./recall/ | tee $(BENCHOUT)/merge.txt

# A replica (bin/liverecall serve, a child process) against a synthetic
# platform of 10M users (QUICK=1: 1M) and 1M streamers in a database of its
# own, 20k live, at 2,000 req/s: latency cold and warm, user cache hit rate,
# peak RSS and bytes of replica memory per user. Not part of `make bench`:
# the full run writes ~22M vectors and wants the machine to itself.
# BENCH_SCALE_FLAGS adds flags (e.g. -keep, then -reuse to skip the load).
bench-scale: build postgres
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-scale $(BENCH_SCALE_FLAGS) | tee $(BENCHOUT)/scale.txt

# The user store's reads from PostgreSQL against MGETs of the same rows from
# Redis (REDIS_ADDR, default 127.0.0.1:6379), on the bench-scale platform:
# same Zipf-drawn users, batch sizes and concurrency (README "How it scales").
# With BENCH_SCALE_FLAGS="-keep -reuse" it reuses a kept platform.
REDIS_ADDR ?= 127.0.0.1:6379
bench-stores: build postgres
	@mkdir -p $(BENCHOUT)
	$(GO) run ./cmd/bench-scale -compare-stores -redis-addr $(REDIS_ADDR) -small-users 0 $(BENCH_SCALE_FLAGS) | tee $(BENCHOUT)/stores.txt

# Runs every benchmark and rewrites BENCHMARKS.md from their output.
BENCH_AREAS ?= index events embed recall quality experiments
bench:
	@set -e; for t in $(BENCH_AREAS); do $(MAKE) --no-print-directory bench-$$t; done
	$(GO) run ./cmd/benchreport $(BENCHOUT) > BENCHMARKS.md.tmp && mv BENCHMARKS.md.tmp BENCHMARKS.md

# The soak: SOAK (default 10m) of recall traffic at 2,000 req/s with an event
# flood and a reload every minute, on real Postgres and the Kafka protocol.
SOAK ?= 10m
soak: deps postgres
	@mkdir -p $(BENCHOUT)
	LIVERECALL_SOAK=$(SOAK) $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./cmd/liverecall | tee $(BENCHOUT)/soak.txt

bench-quick:
	$(MAKE) bench QUICK=1

# The demo: the whole system on this machine (see `liverecall dev -h`):
# local PostgreSQL (started if needed), an in-process Kafka-protocol broker
# unless LIVERECALL_KAFKA_BROKERS is set, a simulated world, trained models,
# the service, live traffic and a report. Ctrl-C stops it.
demo: build postgres
	./bin/liverecall dev

clean:
	rm -rf bin $(BENCHOUT)
