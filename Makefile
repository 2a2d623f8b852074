# twoway build and test entry points.
#
#   make test        everything: tools, gofmt, go vet, all tests with MinIO up,
#                    then the core packages again under the race detector
#   make test-short  go test -short ./... without external servers (S3 tests skip)
#   make build       the twoway binary (with SQL: needs cgo)
#   make nosql       build, vet and test the build without SQL (CGO_ENABLED=0 -tags nosql)
#   make tools       test tools, reused when present: MinIO under .tools/bin,
#                    kcat and chromium (apt-get), kafkajs (npm ci in test/kafkajs)
#   make console-soak  the web console open for an hour: its JS heap stays flat
#   make examples    the example functions: examples/device-twin/go/device-twin.wasm
#                    (Go, GOOS=wasip1) and .../assemblyscript/device-twin.wasm
#                    (AssemblyScript, installed by npm ci from its lock file)

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

# kafkajs is pinned by test/kafkajs/package-lock.json and installed there by
# npm ci; the stamp is inside node_modules, so deleting node_modules or
# changing the lock file reinstalls it.
KAFKAJS_DIR   := $(CURDIR)/test/kafkajs
KAFKAJS_STAMP := $(KAFKAJS_DIR)/node_modules/.twoway-installed

# DuckDB from npm (@duckdb/node-api), pinned by test/duckdb/package-lock.json:
# a reader of the tables' Parquet files that twoway did not build.
DUCKDB_NODE_DIR   := $(CURDIR)/test/duckdb
DUCKDB_NODE_STAMP := $(DUCKDB_NODE_DIR)/node_modules/.twoway-installed

.PHONY: all tools kcat chromium console-soak kafkajs duckdb-node test test-short build fmt-check vet examples asc nosql

# The AssemblyScript toolchain is pinned by the example's package-lock.json
# and installed there by npm ci, as kafkajs is.
AS_DIR   := $(CURDIR)/examples/device-twin/assemblyscript
AS_STAMP := $(AS_DIR)/node_modules/.twoway-installed

asc: $(AS_STAMP)

$(AS_STAMP): $(AS_DIR)/package.json $(AS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "installing AssemblyScript into examples/device-twin/assemblyscript (npm ci)"; \
		cd $(AS_DIR) && npm ci --no-audit --no-fund && touch $@; \
	else \
		echo "npm is missing: install Node.js 20 or later to build the AssemblyScript guests"; \
	fi

examples: asc
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o examples/device-twin/go/device-twin.wasm ./examples/device-twin/go
	@if [ -f $(AS_STAMP) ]; then cd $(AS_DIR) && npm run --silent build; \
	else echo "skipping the AssemblyScript example: its toolchain is not installed"; fi

all: build

tools: $(MINIO) kcat chromium kafkajs duckdb-node asc

$(MINIO): $(MINIO_STAMP)
	@echo "installing MinIO $(MINIO_VERSION) into $(TOOLS) (a few minutes the first time)"
	GOBIN=$(TOOLS) $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(MINIO_STAMP):
	@mkdir -p $(TOOLS)
	@rm -f $(TOOLS)/.minio-*
	@touch $@

# kcat (librdkafka's command-line client) comes from the system's packages:
# apt-get installs it when it is missing, as root or through sudo, fetching
# the package lists first only when the install fails without them. Without
# apt-get the kcat tests skip (and fail under CI=true) until kcat is
# installed some other way.
kcat:
	@if command -v kcat >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "kcat is missing and there is no apt-get: install kcat to run the kcat tests"; \
	else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing kcat with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$sudo apt-get install -y --no-install-recommends kcat || \
		{ $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends kcat; }; \
	fi

# Chromium, the browser the web console is tested in (headless, driven by
# chromedp from internal/console's tests), from the system's packages as
# kcat is. Without it the console's browser tests skip (and fail under
# CI=true).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "chromium is missing and there is no apt-get: install chromium to run the web console's browser tests"; \
	else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing chromium with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$sudo apt-get install -y --no-install-recommends chromium || \
		{ $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium; }; \
	fi

# The web console open for an hour, going from page to page while records
# arrive: its JS heap and DOM must stay flat (make test runs it for two
# minutes).
console-soak: chromium
	TWOWAY_CONSOLE_SOAK=1h $(GO) test -count=1 -v -timeout 90m -run 'TestConsoleHeapFlat' ./internal/console/

kafkajs: $(KAFKAJS_STAMP)

$(KAFKAJS_STAMP): $(KAFKAJS_DIR)/package.json $(KAFKAJS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "installing kafkajs into test/kafkajs (npm ci)"; \
		cd $(KAFKAJS_DIR) && npm ci --no-audit --no-fund && touch $@; \
	else \
		echo "npm is missing: install Node.js 20 or later to run the kafkajs tests"; \
	fi

duckdb-node: $(DUCKDB_NODE_STAMP)

$(DUCKDB_NODE_STAMP): $(DUCKDB_NODE_DIR)/package.json $(DUCKDB_NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "installing @duckdb/node-api into test/duckdb (npm ci)"; \
		cd $(DUCKDB_NODE_DIR) && npm ci --no-audit --no-fund && touch $@; \
	else \
		echo "npm is missing: install Node.js 20 or later to run the DuckDB (npm) table tests"; \
	fi

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The core packages also run under the race detector, with MinIO up and the
# multi-process checkers included: their agent processes are the same test
# binary, so they run under it too, and a race in one fails the checker.
# About 80 s on 2 CPUs.
RACE_PKGS := ./internal/commitlog/... ./internal/stream/... ./bucket/... ./internal/groups/... ./internal/keyed/... ./internal/module/... ./internal/wasm/... ./internal/auth/... ./internal/tlsconf/...
# Functions under the race detector: the actors' mailboxes, redeploys and
# the subscription and timer paths (with the small AssemblyScript guest:
# compiling the Go one under -race takes minutes). The SIGKILL checker's
# agent processes ran in the main step.
RACE_FN   := 'Test(IncrementsThroughTwoAgents|RedeployAndRollbackUnderLoad|AllOrNone.*)$$|TestDeviceTwin$$/assemblyscript'

# Tables under the race detector: the materializer, its maintenance and
# SQL over files and the fresh tail at once.
RACE_TABLES := 'Test(MaterializeExactlyOnce|Maintenance)$$|TestSQLSeesEveryRecord$$/file'

# Transactions and mirroring under the race detector: the coordinator's
# commit, abort, fencing and timeout paths, and the mirror's guard, two
# mirrors at once and its rate limit (their SIGKILL checkers ran in the main
# step).
RACE_TXN    := 'TestTxn(CommitAbort|Zombie|Timeout)'
RACE_MIRROR := 'Test(PositionGuard|TwoMirrorsAtOnce|RetentionSkips|RateLimit|Rebatch)$$|TestMirrorCopiesTopics$$/file'

test: tools examples fmt-check vet
	MINIO=$(MINIO) ./scripts/with-minio.sh $(GO) test -count=1 $(GOTESTFLAGS) ./...
	$(MAKE) nosql
	MINIO=$(MINIO) ./scripts/with-minio.sh $(GO) test -race -count=1 $(GOTESTFLAGS) $(RACE_PKGS)
	$(GO) test -race -count=1 $(GOTESTFLAGS) -run $(RACE_FN) ./internal/functions/
	$(GO) test -race -count=1 $(GOTESTFLAGS) -run $(RACE_TABLES) ./internal/tables/
	$(GO) test -race -count=1 $(GOTESTFLAGS) -run $(RACE_TXN) ./internal/kafka/
	$(GO) test -race -count=1 $(GOTESTFLAGS) -run $(RACE_MIRROR) ./internal/mirror/

# The build without SQL for the smallest devices: no cgo, no DuckDB; it
# still materializes tables, and SQL says it is not built in.
nosql:
	CGO_ENABLED=0 $(GO) build -tags nosql -o /dev/null ./cmd/twoway
	CGO_ENABLED=0 $(GO) vet -tags nosql ./cmd/twoway ./internal/tables/ ./internal/sqlengine/
	CGO_ENABLED=0 $(GO) test -tags nosql -count=1 $(GOTESTFLAGS) -run 'TestNoSQL' ./internal/tables/ ./internal/sqlengine/

test-short:
	$(GO) test -short -count=1 $(GOTESTFLAGS) ./...

build:
	$(GO) build -o twoway ./cmd/twoway
