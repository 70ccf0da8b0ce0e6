# Vigil's build entry points. `make test` is the README's test command and
# what CI runs.
GO       ?= go
PKGS     ?= ./...
BIN      ?= bin/vigil
# Packages with fuzz targets and the targets' names, for `make fuzz`.
FUZZTIME ?= 10s

.PHONY: deps build run test test-short lint bench fuzz clean

deps:
	./scripts/install-deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/vigil

# Runs the server on its embedded default config.
run: build
	./$(BIN) serve

test: deps
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -race -timeout 15m $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	$(GO) vet $(PKGS)

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/vigil bench decode --threads 1
	$(GO) run ./cmd/vigil bench decode --threads 2

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./config/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./ingest/decode/
	$(GO) test -run '^$$' -fuzz FuzzAddStream -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./pipeline/

clean:
	rm -rf bin
