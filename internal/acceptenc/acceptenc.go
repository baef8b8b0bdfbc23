// Package acceptenc reads Accept-Encoding (RFC 9110 §12.5.3) the one way
// whisk's static files (precompressed siblings) and its response
// compression both use: which of the content codings the server can send
// the client accepts, best first.
package acceptenc

import "strings"

// Max is the most codings Order ranks; more are ignored.
const Max = 8

// Order returns the indexes into codings (lower-case tokens such as "br",
// "zstd", "gzip", in the server's order of preference) of those that the
// Accept-Encoding header lines in values accept, best first: the higher
// q-value, then the server's preference. Several lines read as one list.
//
// A coding's q-value is its own entry's, else that of "*" when present,
// else 0; "x-gzip" counts as "gzip", names are case-insensitive, and an
// entry whose q-value is not an RFC 9110 qvalue ("0" to "1" with at most
// three decimals) is ignored. A coding is acceptable when its q-value is
// above 0 and not below the q-value of an explicit "identity" entry. No
// header, or an empty one, accepts no coding.
func Order(values []string, codings []string) (order [Max]int, n int) {
	var q, named [Max]int // q in thousandths; named: 1 when listed by name
	identity, wildcard := -1, -1
	ncod := min(len(codings), Max)
	for _, header := range values {
		for len(header) > 0 {
			var item string
			item, header, _ = strings.Cut(header, ",")
			token, params, _ := strings.Cut(item, ";")
			token = strings.TrimSpace(token)
			if token == "" {
				continue
			}
			qv := qParam(params)
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
				for i := range ncod {
					if strings.EqualFold(token, codings[i]) {
						q[i], named[i] = qv, 1
					}
				}
			}
		}
	}
	for i := range ncod {
		if named[i] == 0 && wildcard > 0 {
			q[i] = wildcard
		}
		if q[i] <= 0 || q[i] < identity {
			continue
		}
		// Insertion by q, stable: equal q-values keep the server's order.
		j := n
		for j > 0 && q[order[j-1]] < q[i] {
			order[j] = order[j-1]
			j--
		}
		order[j] = i
		n++
	}
	return order, n
}

// qParam finds "q=" among the ;-separated parameters and returns it in
// thousandths: 1000 when absent, -1 when malformed.
func qParam(params string) int {
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		return qValue(strings.TrimSpace(v))
	}
	return 1000
}

// qValue parses an RFC 9110 qvalue ("0", "0.5", "1.000") into
// thousandths, or returns -1.
func qValue(v string) int {
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
