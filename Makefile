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

.PHONY: all build test unit e2e demo bench lint proto minio fuzz soak clean

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

test: minio
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

demo: build
	./bin/rwsnap playground

bench: minio
	$(GO) run ./e2e/bench

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(BIN)/staticcheck ./...

# Regenerates the committed protobuf code (needs Debian's protobuf-compiler).
proto:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH=$(BIN):$$PATH protoc -I proto --go_out=. --go_opt=module=github.com/rwsnap/rwsnap proto/*.proto

clean:
	rm -rf bin
