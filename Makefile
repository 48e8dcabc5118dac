# claude-guardian — see README.md.
GO      ?= go
BIN     := bin/guardian
PKGS    := ./...
# CI runs every benchmark once so a broken one fails; `make bench` measures.
BENCHTIME ?= 2s

.PHONY: build run test test-short bench bench-ci bench-rls bench-pool lint fmt clean e2e-deps

build:
	$(GO) build -o $(BIN) ./cmd/guardian

# Runs the gateway on the embedded default: in-memory state, loopback ports.
run: build
	$(BIN) serve --config deploy/local/guardian.yaml

# The full suite: vet, gofmt, race-enabled tests (they start their own
# redis-server instances), and each benchmark once.
test: lint e2e-deps
	$(GO) test -race -count=1 $(PKGS)
	$(MAKE) bench-ci

# The TypeScript SDK for the end-to-end tests (skipped without node).
e2e-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  cd e2e/ts && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the TypeScript SDK test will be skipped"; fi

test-short:
	$(GO) test -short -count=1 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem $(PKGS)

# The key-pool benchmark: guardian (through the Envoy emulator) and two
# baseline strategies against the fake Anthropic, 8 Tier-1 accounts, load
# offered at 1.5× capacity for POOL_DURATION (about 3 × that in all).
POOL_DURATION ?= 60s
bench-pool:
	$(GO) run ./cmd/poolbench -duration $(POOL_DURATION)

bench-ci:
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem $(PKGS)

# guardian's RLS (memory and Redis), a no-op RLS v3 server and, if
# installed, envoyproxy/ratelimit, driven side by side by cmd/rlsload.
# Knobs: DURATION, CONCURRENCY, TENANTS, HITS, REF_BIN.
bench-rls:
	deploy/local/bench/bench-rls.sh

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
