# Vigil's build entry points. `make test` is the README's test command and
# what CI runs.
GO       ?= go
PKGS     ?= ./...
BIN      ?= bin/vigil
FUZZTIME ?= 10s

.PHONY: deps test-deps build run test test-short lint bench fuzz models clean

deps:
	./scripts/install-deps.sh

# On top of deps: the peers the tests start (GStreamer RTSP server, Chromium)
# and ONNX Runtime's library.
test-deps: deps
	./scripts/install-deps.sh --test
	./scripts/install-ort.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/vigil

# Runs the server on its embedded default config.
run: build
	./$(BIN) serve

test: test-deps
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -race -timeout 15m $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	$(GO) vet $(PKGS)

bench: test-deps
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/vigil bench decode --threads 1
	$(GO) run ./cmd/vigil bench decode --threads 2

# Every fuzz target runs for FUZZTIME (a duration, or a count like 10000x as
# CI uses), except the slow ones in FUZZ_SLOW, which run for FUZZTIME_SLOW
# (building a gorgonia graph per input runs a few inputs a second); inputs
# found interesting are shrunk for at most 10 tries, so a run never stalls in
# minimisation.
FUZZ_SLOW ?= FuzzLoadModel
FUZZTIME_SLOW ?= 20x
fuzz:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | while read f; do \
	  pkg=./$$(dirname $${f#./}); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    ft=$(FUZZTIME); case " $(FUZZ_SLOW) " in *" $$t "*) ft=$(FUZZTIME_SLOW);; esac; \
	    echo "fuzz $$pkg $$t ($$ft)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $$ft -fuzzminimizetime 10x $$pkg; \
	  done; \
	done

# Retrains the built-in models from scratch, as the README describes (about
# 30 minutes on 2 cores), and puts them into inference/builtin/.
MODELS ?= bin/models
CALIB  ?= synth://?w=640&h=360&seed=555&objects=10&distractors=4&texture=0.5&realtime=0
models: build
	./$(BIN) train --task detect --out $(MODELS)/detector --seed 1 --int8-frames 0
	./$(BIN) models quantize $(MODELS)/detector --calib '$(CALIB)' --frames 60 --holdout 30
	./$(BIN) train --task segment --out $(MODELS)/segmenter --seed 1
	./$(BIN) train --task embed --out $(MODELS)/embedder --seed 1 --augment on
	for m in detector segmenter embedder; do \
	  rm -f inference/builtin/$$m/*; cp $(MODELS)/$$m/model.yaml $(MODELS)/$$m/*.onnx inference/builtin/$$m/; \
	done

clean:
	rm -rf bin
