# rwsnap: two commands for a newcomer, `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
CACHE := $(CURDIR)/.cache
BIN := $(CACHE)/bin
# MinIO has no semver tags; this pseudo-version is the build the S3 tests run
# against (it honours If-Match / If-None-Match on PutObject).
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
PROTOC_GEN_GO_VERSION := v1.36.11
STATICCHECK_VERSION := v0.8.2
export RWSNAP_MINIO_BIN := $(BIN)/minio
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test demo bench bench-data bench-large etcdctl mc lint proto minio psql chromium soak chaos clean

all: build

build:
	$(GO) build -o bin/rwsnap ./cmd/rwsnap

# The MinIO server the S3 tests start on loopback, built once from the Go
# module proxy (about 2.5 minutes) and cached in the git-ignored .cache/.
minio: $(BIN)/minio
$(BIN)/minio:
	@mkdir -p $(BIN)
	@echo "building MinIO $(MINIO_VERSION) once into $(BIN) (about 2.5 minutes)..."
	GOBIN=$(BIN) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

# psql is the real client the time-travel tests drive (Debian's
# postgresql-client); installed here so a fresh machine needs nothing else.
psql:
	@command -v psql >/dev/null || { echo "installing postgresql-client (psql) for the time-travel tests..."; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql-client >/dev/null; }

# chromium is the real browser the report tests load the HTML page in
# (Debian's chromium, headless, with a net log proving the page loads
# nothing from anywhere).
chromium:
	@command -v chromium >/dev/null || { echo "installing chromium for the report tests..."; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: minio psql chromium
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

demo: build
	./bin/rwsnap playground

# Figures, not assertions: backup vs etcdctl snapshot save and vs one
# unpaged etcdctl get, restore vs bare batched puts (1 and 4 in flight,
# fsync off and on), verify and copy vs a streamed read of the object, with
# peak RSS, on fs:// and MinIO; see docs/performance.md. BENCH_FLAGS passes
# more (-profile DIR, -runs N, -stores fs).
BENCH_KEYS ?= 10000,100000,1000000
bench: build minio etcdctl
	$(GO) build -o $(CACHE)/bench ./e2e/bench
	$(CACHE)/bench -keys $(BENCH_KEYS) -rwsnap bin/rwsnap -etcdctl $(BIN)/etcdctl $(BENCH_FLAGS)
	$(MAKE) bench-data

# The data section: a full and an incremental copy of a hummock location's
# SST objects (backup-data) against `mc mirror` of the same objects, on one
# MinIO (server-side copy) and MinIO -> fs (streamed). ~10k objects / 4 GiB
# by default; smaller on a shared machine, e.g.
# make bench-data DATA_BENCH_OBJECTS=2000 DATA_BENCH_MIB=512
DATA_BENCH_OBJECTS ?= 10000
DATA_BENCH_MIB ?= 4096
bench-data: build minio mc
	$(GO) build -o $(CACHE)/benchdata ./e2e/benchdata
	$(CACHE)/benchdata -objects $(DATA_BENCH_OBJECTS) -mib $(DATA_BENCH_MIB) -rwsnap bin/rwsnap -mc $(BIN)/mc $(DATA_BENCH_FLAGS)

# mc, MinIO's own client, the data bench's baseline (mc mirror); like the
# server it has no semver tags, so a pinned pseudo-version.
MC_VERSION := v0.0.0-20250313080218-cf909e1063a9
mc: $(BIN)/mc
$(BIN)/mc:
	@mkdir -p $(BIN)
	@echo "building mc $(MC_VERSION) once into $(BIN)..."
	GOBIN=$(BIN) $(GO) install github.com/minio/mc@$(MC_VERSION)

# 10M keys (about 3.4 GiB of snapshot): outside make test and CI. Its 20,000
# tables make a hummock delta of ~2 MiB, past etcd's default 1.5 MiB request
# limit, so its etcds take 10 MiB requests.
bench-large:
	$(MAKE) bench BENCH_KEYS=10000000 BENCH_FLAGS="-stores fs -fsync-keys 0 -max-request-bytes 10485760 $(BENCH_FLAGS)"

# etcdctl, the baselines' client (snapshot save, unpaged get), pinned to the
# etcd release the tests embed. Its module has replace directives, so it is
# built from a scratch module that requires it (go install @version
# refuses those).
ETCD_VERSION := v3.7.3
etcdctl: $(BIN)/etcdctl
$(BIN)/etcdctl:
	@mkdir -p $(BIN)
	@echo "building etcdctl $(ETCD_VERSION) once into $(BIN)..."
	tmp=$$(mktemp -d) && cd $$tmp && $(GO) mod init etcdctlbuild >/dev/null 2>&1 && \
	  $(GO) get go.etcd.io/etcd/etcdctl/v3@$(ETCD_VERSION) && \
	  $(GO) build -o $(BIN)/etcdctl go.etcd.io/etcd/etcdctl/v3 && cd / && rm -rf $$tmp

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(BIN)/staticcheck ./...

# Regenerates the committed protobuf code (needs Debian's protobuf-compiler).
# protoc-gen-go-grpc v1.6.2 generates code for grpc-go >= 1.64 (go.mod has 1.85).
proto:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH=$(BIN):$$PATH protoc -I proto --go_out=. --go_opt=module=github.com/rwsnap/rwsnap \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/rwsnap/rwsnap proto/*.proto

# Long runs, not in `make test`: each fuzz target for FUZZTIME, then the
# fault, crash and concurrency tests SOAK_COUNT times.
FUZZTIME ?= 30s
SOAK_COUNT ?= 5
soak: minio
	FUZZTIME=$(FUZZTIME) SOAK_COUNT=$(SOAK_COUNT) scripts/soak.sh

# A long chaos campaign, not in `make test` (which runs a short one with a
# fixed seed): random concurrent backup, delete, prune, copy, verify and
# restore on fs:// and MinIO behind the fault proxy, with kill -9, S3 faults
# and etcd leader changes; invariants checked after every step. Loopback
# only, bounded by CHAOS_STEPS and CHAOS_DURATION; CHAOS_SEED replays a run.
CHAOS_SEED ?= $(shell date +%s)
CHAOS_STEPS ?= 400
CHAOS_DURATION ?= 15m
chaos: minio
	$(GO) test -count=1 -timeout 60m -v -run TestChaos ./e2e/chaos \
	  -args -chaos.seed=$(CHAOS_SEED) -chaos.steps=$(CHAOS_STEPS) -chaos.duration=$(CHAOS_DURATION)

clean:
	rm -rf bin
