# Benchmarks: included by the Makefile. Not part of `make test` (which only
# runs each Go benchmark once, with -benchtime=1x, so they cannot rot).

BENCH_FLAGS ?=
BENCHTIME   ?= 1s

SOAK_DURATION ?= 10m
SOAK_CLIENTS  ?= 2000
SOAK_FLAGS    ?=

.PHONY: bench bench-build bench-quick bench-micro bench-smoke soak

bench-build:
	$(GO) build -o bin/benchapp ./cmd/benchapp
	$(GO) build -o bin/sockstream-bench ./cmd/sockstream-bench

## bench: a Redis, then two Go nodes and two Node reference nodes in turn, the
## same scenarios against both; prints the table and writes docs/benchmarks.md
## (the JSON and the Go profiles go to bin/). About 5 minutes on 2 cores.
bench: deps-redis deps-node bench-build
	bin/sockstream-bench -suite -out docs/benchmarks.md -json bin/bench-results.json \
		-profile-dir bin/bench-profiles $(BENCH_FLAGS)

## bench-quick: the same suite, tiny and short: checks that it runs end to end.
bench-quick: deps-redis deps-node bench-build
	bin/sockstream-bench -suite -quick $(BENCH_FLAGS)

## bench-micro: the Go microbenchmarks of the hot paths (codec, XADD path,
## local broadcast to 1,000 sockets); BENCHTIME=5s for steadier figures.
bench-micro: deps-redis
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) ./cluster ./server

## bench-smoke: every Go benchmark once, without the race detector.
bench-smoke: deps-redis
	$(GO) test -run '^$$' -bench . -benchtime=1x ./cluster ./server

## soak: a Redis and two Go nodes (connection state recovery on, each node's
## Redis connection through a fault proxy), SOAK_CLIENTS clients in 20 rooms,
## 20 senders at 50 msg/s in all, for SOAK_DURATION; from the second minute a
## fault every minute, in rotation: Redis killed and restarted, a node
## restarted, a node's Redis connection cut (5 s each). Reports lost and
## duplicated deliveries per minute and in total, what clients missed while
## away without recovery, and each node's RSS and goroutines every 10 s;
## fails if anything was lost or duplicated. JSON in bin/soak.json.
## SOAK_FLAGS=-quick: 40 clients, one fault of each kind, 12 s.
soak: deps-redis bench-build
	bin/sockstream-bench -soak -soak-duration $(SOAK_DURATION) -soak-clients $(SOAK_CLIENTS) \
		-json bin/soak.json $(SOAK_FLAGS)
