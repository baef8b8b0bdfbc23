# One line per target; scripts/ holds the logic.
.PHONY: build serve test race fuzz lint bench

build:
	go build -o whisk ./cmd/whisk

serve: build
	./whisk serve examples/hello/app.py

test:
	scripts/test.sh

race:
	go test -race ./...

fuzz:
	FUZZTIME=60s scripts/test.sh

lint:
	go vet ./... && test -z "$$(gofmt -l $$(git ls-files '*.go'))"

bench:
	bench/run.sh
