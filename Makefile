# twoway build and test entry points.
#
#   make test        everything: tools, gofmt, go vet, all tests with MinIO up
#   make test-short  go test -short ./... without external servers (S3 tests skip)
#   make build       the twoway binary
#   make tools       test tools under .tools/bin (MinIO), reused when present

GO    ?= go
TOOLS := $(CURDIR)/.tools/bin

# MinIO is pinned to a commit known to build with the Go this module uses.
# The binary is reused while the stamp file naming its version is older than
# it; changing the version (or deleting the binary) rebuilds it.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO         := $(TOOLS)/minio
MINIO_STAMP   := $(TOOLS)/.minio-$(MINIO_VERSION)

# Extra flags for go test, e.g. make test GOTESTFLAGS=-race.
GOTESTFLAGS ?=

.PHONY: all tools test test-short build fmt-check vet

all: build

tools: $(MINIO)

$(MINIO): $(MINIO_STAMP)
	@echo "installing MinIO $(MINIO_VERSION) into $(TOOLS) (a few minutes the first time)"
	GOBIN=$(TOOLS) $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(MINIO_STAMP):
	@mkdir -p $(TOOLS)
	@rm -f $(TOOLS)/.minio-*
	@touch $@

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: tools fmt-check vet
	MINIO=$(MINIO) ./scripts/with-minio.sh $(GO) test -count=1 $(GOTESTFLAGS) ./...

test-short:
	$(GO) test -short -count=1 $(GOTESTFLAGS) ./...

build:
	$(GO) build -o twoway ./cmd/twoway
