# drover — build, test and demo. `make test` is what CI runs (.ci/run).
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 10s
BIN       ?= bin/drover

.PHONY: all build test deps fmt vet unit fuzz crossbuild release demo bench chaos clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/drover
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)-agent ./cmd/drover-agent

# The whole suite, in order: dependencies, formatting, vet, tests, brief
# fuzzing of every Fuzz* target, cross-compilation.
test: deps fmt vet unit fuzz crossbuild

deps:
	scripts/deps.sh

fmt:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# PostgreSQL is started (or reused) by scripts/postgres.sh in the same shell
# as the tests, which read DROVER_TEST_POSTGRES from it.
unit:
	eval "$$(scripts/postgres.sh)" && $(GO) test -count=1 -p 2 -timeout 30m $(PKGS)

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

crossbuild:
	scripts/crossbuild.sh

# The release: binaries for every platform, the .deb and .rpm packages
# of drover-agent and drover, SHA256SUMS and manifest.json signed with
# the ed25519 key in RELEASE_KEY (default $$DROVER_RELEASE_KEY; without
# either, a test key is made in bin/release-test.key). Checked with
#   go run ./scripts/release verify --pub release.pub dist
# (see README, "Install").
VERSION     ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//' || true)
RELEASE_KEY ?= $(or $(DROVER_RELEASE_KEY),bin/release-test.key)
DIST        ?= dist

release:
	@v="$(VERSION)"; [ -n "$$v" ] || v="0.0.0-git$$(git log -1 --format=%cd.%h --date=format:%Y%m%d)"; \
	rm -rf $(DIST) && scripts/crossbuild.sh $(DIST)/bin && \
	$(GO) run ./scripts/release build --version "$$v" --bin $(DIST)/bin --out $(DIST) --key $(RELEASE_KEY) \
		$(if $(filter bin/release-test.key,$(RELEASE_KEY)),--new-key) && \
	rm -rf $(DIST)/bin

# The demo, built first with every package named as it compiles: a fresh
# machine spends a few minutes downloading and compiling (see README).
demo:
	@echo "make demo: building $(BIN); on a fresh machine this downloads and compiles the dependencies (minutes), listing each package as it goes"
	CGO_ENABLED=0 $(GO) build -v -trimpath -o $(BIN) ./cmd/drover
	$(BIN) demo $(DEMOFLAGS)

# Benchmarks: the simulator at 100,000 nodes and the engine's Decide.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 -p 1 ./internal/sim ./internal/engine

# The long fault campaign (internal/chaos TestCampaign; `make test` runs
# the short one, 200 faults). Needs root (tmpfs mounts for the full-disk
# faults) and PostgreSQL (its PostgreSQL rounds; scripts/postgres.sh).
# CHAOS_SEED reruns a campaign; the figure is written to CHAOS_OUT.
CHAOS_FAULTS ?= 1000
CHAOS_SEED   ?=
CHAOS_OUT    ?= chaos-figure.txt
chaos:
	eval "$$(scripts/postgres.sh)" && DROVER_CHAOS_FAULTS=$(CHAOS_FAULTS) DROVER_CHAOS_SEED=$(CHAOS_SEED) DROVER_CHAOS_OUT=$(abspath $(CHAOS_OUT)) \
		$(GO) test -count=1 -timeout 60m -v -run '^TestCampaign$$' ./internal/chaos

clean:
	rm -rf bin dist
