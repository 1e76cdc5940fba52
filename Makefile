# sockstream: the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
ADDR  ?= :3000

CLIENT_JS := cmd/chat/web/socket.io.min.js

.PHONY: run cluster-demo test deps deps-redis deps-node deps-chromium deps-prometheus fmt-check vet gotest build clean

## run: the chat demo on $(ADDR), one node, in-memory adapter.
run: $(CLIENT_JS)
	$(GO) run ./cmd/chat -addr $(ADDR)

## cluster-demo: a Redis and two chat nodes sharing it, on :3000 and :3001.
DEMO_REDIS_PORT ?= 6390
cluster-demo: $(CLIENT_JS) deps-redis
	$(GO) build -o bin/chat ./cmd/chat
	@dir=$$(mktemp -d); \
	redis-server --port $(DEMO_REDIS_PORT) --bind 127.0.0.1 --save '' --appendonly no --dir $$dir --loglevel warning & r=$$!; \
	until redis-cli -p $(DEMO_REDIS_PORT) ping >/dev/null 2>&1; do sleep 0.1; done; \
	bin/chat -addr :3000 -redis redis://127.0.0.1:$(DEMO_REDIS_PORT) & a=$$!; \
	bin/chat -addr :3001 -redis redis://127.0.0.1:$(DEMO_REDIS_PORT) & b=$$!; \
	trap 'kill $$a $$b $$r 2>/dev/null; wait; rm -rf $$dir' INT TERM EXIT; \
	echo "chat on http://localhost:3000 and http://localhost:3001, one cluster over Redis :$(DEMO_REDIS_PORT); Ctrl-C stops everything"; \
	wait

## test: install what is missing, then gofmt, go vet and every test with -race.
test: deps $(CLIENT_JS) fmt-check vet gotest

build:
	$(GO) build ./...

deps: deps-redis deps-node deps-chromium deps-prometheus

# redis-server and redis-cli: the tests start their own servers on free ports.
deps-redis:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then echo "redis-server is missing: run 'apt-get install redis-server' as root, or 'make test' as root"; exit 1; fi; \
		echo "installing redis-server"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	fi

# Debian's Chromium, for the chat's browser test (driven by playwright-core
# from testdata/; no browser download).
deps-chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "chromium is missing: run 'apt-get install chromium' as root"; exit 1; fi; \
		echo "installing chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Prometheus and promtool, for the metrics tests (a real server scrapes nodes).
deps-prometheus:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then echo "prometheus is missing: run 'apt-get install prometheus' as root"; exit 1; fi; \
		echo "installing prometheus"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	fi

# Node and the official Socket.IO client + Node reference server, from the lockfile.
deps-node:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then echo "node and npm are missing: run 'apt-get install nodejs npm' as root"; exit 1; fi; \
		echo "installing nodejs and npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	@$(MAKE) --no-print-directory $(NPM_STAMP)

# npm ci again whenever the lockfile changes.
NPM_STAMP := testdata/node_modules/.sockstream-installed
$(NPM_STAMP): testdata/package-lock.json
	cd testdata && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(CLIENT_JS): testdata/package-lock.json
	@$(MAKE) --no-print-directory deps-node
	cp testdata/node_modules/socket.io-client/dist/socket.io.min.js $@

fmt-check:
	@out="$$(find . -name '*.go' -not -path './testdata/node_modules/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# -bench with -benchtime=1x runs every benchmark once, in the same build, so
# that none can rot; the figures come from `make bench`.
gotest:
	$(GO) test -race -count=1 -bench=. -benchtime=1x -timeout 12m ./...

clean:
	rm -f $(CLIENT_JS)

include bench.mk
