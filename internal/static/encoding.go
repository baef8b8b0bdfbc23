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

// maxCodings bounds len(Handler.codings): the three known codings.
const maxCodings = 3

// acceptQ returns the q-value (0..1000) Accept-Encoding gives each of
// codings, and the q-value of identity when it is listed explicitly (-1
// otherwise). An absent or empty header accepts no coding. Entries with a
// malformed q-value are ignored; "x-gzip" counts as "gzip"; "*" gives its
// q-value to the codings not listed by name.
func acceptQ(header string, codings []coding) (q [maxCodings]int, identity int) {
	identity = -1
	var named [maxCodings]bool
	wildcard := -1
	for len(header) > 0 {
		var item string
		item, header, _ = strings.Cut(header, ",")
		token, params, _ := strings.Cut(item, ";")
		token = strings.TrimSpace(token)
		if token == "" {
			continue
		}
		qv := parseQParam(params)
		if qv < 0 {
			continue
		}
		if strings.EqualFold(token, "x-gzip") {
			token = "gzip"
		}
		switch {
		case token == "*":
			wildcard = qv
		case strings.EqualFold(token, "identity"):
			identity = qv
		default:
			for i, c := range codings {
				if strings.EqualFold(token, c.token) {
					q[i], named[i] = qv, true
				}
			}
		}
	}
	if wildcard > 0 {
		for i := range codings {
			if !named[i] {
				q[i] = wildcard
			}
		}
	}
	return q, identity
}

// parseQParam finds "q=" among the ;-separated parameters and returns it in
// thousandths: 1000 when absent, -1 when malformed.
func parseQParam(params string) int {
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		return parseQValue(strings.TrimSpace(v))
	}
	return 1000
}

// parseQValue parses an RFC 9110 qvalue ("0", "0.5", "1.000") into
// thousandths, or returns -1.
func parseQValue(v string) int {
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return -1
	}
	n := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return n
	}
	if v[1] != '.' {
		return -1
	}
	scale := 100
	for _, c := range v[2:] {
		if c < '0' || c > '9' {
			return -1
		}
		n += int(c-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return -1
	}
	return n
}

// candidates returns the indexes of the acceptable codings (q > 0 and not
// below an explicit identity q-value), best first: higher q, then the order
// of preference.
func candidates(q [maxCodings]int, identity int, n int) (order [maxCodings]int, count int) {
	for i := range n {
		if q[i] <= 0 || q[i] < identity {
			continue
		}
		// Insertion sort: a stable pass over at most three entries.
		j := count
		for j > 0 && q[order[j-1]] < q[i] {
			order[j] = order[j-1]
			j--
		}
		order[j] = i
		count++
	}
	return order, count
}
