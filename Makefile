# Shipyard: `make run` starts Bay on embedded SQLite with the local Docker Engine;
# `make test` runs every check CI runs. Both install what is missing.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 0
GO ?= go
# -trimpath: the build cache then serves a fresh clone (CI) the packages an
# earlier checkout compiled; without it every path is part of the cache key.
GOFLAGS_TEST ?= -trimpath -race -count=1
BAY_DATA_DIR ?= $(CURDIR)/data

.PHONY: all build bay ship shipyard-mcp shipyard image image-bay image-data run test lint unit bench soak clean deps docker kube kube-build kube-down prereqs

all: build

build: bay ship shipyard-mcp shipyard

bay:
	$(GO) build -trimpath -o bin/bay ./cmd/bay

ship:
	$(GO) build -trimpath -o bin/ship ./cmd/ship

# The MCP server over stdio, for desktop MCP clients (Bay itself serves /mcp).
shipyard-mcp:
	$(GO) build -trimpath -o bin/shipyard-mcp ./cmd/shipyard-mcp

# The command-line client (one static binary on the Go SDK, pkg/shipyard).
shipyard:
	$(GO) build -trimpath -o bin/shipyard ./cmd/shipyard

# The Docker Engine, with gVisor registered as the runtime "runsc" (profile python-secure).
docker:
	@scripts/ensure-docker.sh
	@scripts/ensure-runsc.sh

# The Ship and Gull (browser) images, built offline from Debian's packages and
# cached by content hash. The two Debian bases build side by side (Ship's takes
# most of a fresh machine's build; Gull's runs meanwhile), then Gull's binary
# goes on its base. mmdebstrap is installed first so the two never run apt at once.
# Bay's own image (for deploy/k8s) needs no Debian base and comes first.
image: docker image-bay
	@command -v mmdebstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; }
	@images/gull/build.sh base >/dev/null & gull=$$!; \
	images/ship/build.sh; ship=$$?; wait $$gull; gullbase=$$?; \
	[ $$ship -eq 0 ] && [ $$gullbase -eq 0 ] && images/gull/build.sh

# bay:latest for deploy/k8s: the static Bay binary alone (no distribution),
# built offline and cached by content hash; scripts/kube.sh loads it into the
# test cluster.
image-bay: docker
	@images/bay/build.sh >/dev/null

# The fuller data-science image of the python-data profile (scipy, sklearn, ...);
# not needed by the tests.
image-data: docker
	@SHIP_IMAGE=ship:data SHIP_PACKAGE_FILES="packages.txt packages-data.txt" images/ship/build.sh

run: docker bay image
	@mkdir -p $(BAY_DATA_DIR)
	@echo "Bay: http://127.0.0.1:$${BAY_SERVER__PORT:-8114}  (data: $(BAY_DATA_DIR))"
	@echo "Auth: Authorization: Bearer <api_key from $(BAY_DATA_DIR)/credentials.json, or \$$BAY_API_KEY>"
	BAY_DATA_DIR=$(BAY_DATA_DIR) BAY_LOG__FORMAT=$${BAY_LOG__FORMAT:-text} ./bin/bay serve

deps: docker
	@scripts/ensure-host-deps.sh

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit: deps
	CGO_ENABLED=1 $(GO) test $(GOFLAGS_TEST) -short ./...

# A real single-node Kubernetes cluster (scripts/kube.sh; docs/operations.md):
# prints its kubeconfig's path. The binaries are built once per version (~15
# min of CPU on a fresh machine, cached in /var/cache/shipyard/kube); `make
# kube-down` stops the cluster and cleans up after it.
kube: docker
	@scripts/kube.sh up

kube-build:
	@scripts/kube.sh build

kube-down:
	@scripts/kube.sh down

# The two slow first-run steps, the images (mostly downloads and dpkg) and the
# cluster's binaries (CPU), run side by side.
prereqs: deps
	@$(MAKE) --no-print-directory -j2 image kube-build

# Container tests against the real image, real Docker, real SQLite and PostgreSQL,
# and the Kubernetes driver against a real cluster (left running afterwards:
# loopback-only but for the kubelet's authenticated port; make kube-down stops it).
# A failing pg.sh or kube.sh must fail the run, not silently skip their tests.
# test/cluster runs bin/bay as several replicas.
# test/bay is named first: it is the longest package (~10 min), and go test
# starts packages in the order given, so the rest share the other slot
# instead of delaying it.
test: lint prereqs bay
	dsn=$$(scripts/pg.sh) && kc=$$(scripts/kube.sh up) && SHIPYARD_E2E=1 SHIPYARD_TEST_PG_DSN="$$dsn" \
		SHIPYARD_TEST_KUBECONFIG="$$kc" SHIPYARD_BAY_BIN=$(CURDIR)/bin/bay CGO_ENABLED=1 \
		$(GO) test $(GOFLAGS_TEST) -timeout 18m ./test/bay ./...

# The issue-9 soak: 10 minutes of mixed load over 3 replicas of bin/bay on one
# PostgreSQL, one replica killed and restarted every minute (test/cluster TestSoak);
# the report goes to bench/SOAK.md (numbers quoted in bench/REPORT.md).
soak: deps image bay
	dsn=$$(scripts/pg.sh) && SHIPYARD_E2E=1 SHIPYARD_SOAK=1 SHIPYARD_TEST_PG_DSN="$$dsn" SHIPYARD_BAY_BIN=$(CURDIR)/bin/bay \
		SHIPYARD_SOAK_REPORT=$(CURDIR)/bench/SOAK.md $(GO) test -count=1 -run '^TestSoak$$' -timeout 20m -v ./test/cluster

# Every benchmark, side by side with its baseline, into bench/REPORT.md (< 10 min).
bench: deps image bay
	SHIPYARD_E2E=1 SHIPYARD_BENCH=1 SHIPYARD_BENCH_BAY=$(CURDIR)/bin/bay \
		$(GO) test -count=1 -run '^TestReport$$' -timeout 12m -v ./bench

clean:
	rm -rf bin
