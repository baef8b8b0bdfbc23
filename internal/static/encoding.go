package static

import (
	"fmt"
	"strings"
)

// coding is a content coding the handler looks for as a sibling file.
type coding struct {
	token  string // Content-Encoding value: "br"
	suffix string // file name suffix: ".br"
}

// knownCodings maps an accepted Options.Precompressed name to its coding.
var knownCodings = map[string]coding{
	"br":   {token: "br", suffix: ".br"},
	"zstd": {token: "zstd", suffix: ".zst"},
	"gzip": {token: "gzip", suffix: ".gz"},
}

// DefaultPrecompressed is the Options.Precompressed used when it is nil:
// brotli, then zstd, then gzip, in order of preference on equal q-values.
func DefaultPrecompressed() []string { return []string{"br", "zstd", "gzip"} }

func parseCodings(names []string) ([]coding, error) {
	if names == nil {
		names = DefaultPrecompressed()
	}
	out := make([]coding, 0, len(names))
	for _, n := range names {
		c, ok := knownCodings[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("precompressed encoding %q: want br, zstd or gzip", n)
		}
		for _, o := range out {
			if o == c {
				return nil, fmt.Errorf("precompressed encoding %q listed twice", n)
			}
		}
		out = append(out, c)
	}
	return out, nil
}
