# One line per target; scripts/ holds the logic.
.PHONY: build serve test race fuzz lint bench

build:
	go build -o whisk ./cmd/whisk

serve: build
	./whisk serve --allow-root examples/hello/app.py

test:
	scripts/test.sh

race:
	go test -race ./...

fuzz:
	FUZZ=10000000x FUZZ_E2E=100000x scripts/test.sh

lint:
	go vet ./... && test -z "$$(gofmt -l $$(git ls-files '*.go'))"

bench:
	bench/run.sh
