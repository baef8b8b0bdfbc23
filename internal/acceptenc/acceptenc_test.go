package acceptenc

import (
	"slices"
	"strings"
	"testing"
)

var codings = []string{"br", "zstd", "gzip"}

// TestOrder: q-values (RFC 9110 qvalues only), the wildcard, an explicit
// identity, x-gzip, case, several header lines, and the server's
// preference on ties.
func TestOrder(t *testing.T) {
	tests := []struct {
		values []string
		want   []int
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{"br"}, []int{0}},
		{[]string{"gzip, deflate, br, zstd"}, []int{0, 1, 2}},
		{[]string{"br;q=0.5 , gzip ; q=0.25"}, []int{0, 2}},
		{[]string{"*;q=0.3, br;q=0"}, []int{1, 2}},
		{[]string{"*"}, []int{0, 1, 2}},
		{[]string{"*;q=0"}, nil},
		{[]string{"identity;q=0.9, gzip;q=1.0"}, []int{2}},
		{[]string{"identity;q=1, br;q=0.5"}, nil},
		{[]string{"br;q=1.5, gzip;q=0.1234, zstd;q=.5"}, nil},
		{[]string{",,br;;q=1,"}, []int{0}},
		{[]string{"br;level=5;q=0.7"}, []int{0}},
		{[]string{"x-gzip"}, []int{2}},
		{[]string{"GZIP;Q=0.5, Br"}, []int{0, 2}},
		{[]string{"gzip", "br;q=0.5"}, []int{2, 0}},
		{[]string{"deflate, compress"}, nil},
	}
	for _, tt := range tests {
		order, n := Order(tt.values, codings)
		if got := order[:n]; !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
			t.Errorf("%q: %v, want %v", tt.values, got, tt.want)
		}
	}
}

// TestQValue: the RFC 9110 qvalue grammar, in thousandths.
func TestQValue(t *testing.T) {
	for v, want := range map[string]int{
		"0": 0, "1": 1000, "0.5": 500, "0.125": 125, "1.000": 1000, "1.": 1000, "0.": 0,
		"": -1, "1.001": -1, "2": -1, ".5": -1, "0.1234": -1, "0,5": -1, "0.5x": -1, "-0": -1,
	} {
		if got := qValue(v); got != want {
			t.Errorf("qValue(%q) = %d, want %d", v, got, want)
		}
	}
}

// FuzzOrder: whatever the header, Order returns distinct indexes of the
// codings, each named in the header (or covered by "*"), the same each
// time.
func FuzzOrder(f *testing.F) {
	for _, s := range []string{"", "br", "gzip;q=0.5, br;q=1", "*;q=0.3, br;q=0", "identity;q=0.9, x-gzip", ",,;;=,q=1"} {
		f.Add(s, "br;q=0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		values := []string{a, b}
		order, n := Order(values, codings)
		again, n2 := Order(values, codings)
		if n != n2 || order != again {
			t.Fatalf("%q: %v then %v", values, order[:n], again[:n2])
		}
		if n > len(codings) {
			t.Fatalf("%q: %d codings", values, n)
		}
		lower := strings.ToLower(a + "," + b)
		seen := map[int]bool{}
		for _, i := range order[:n] {
			if i < 0 || i >= len(codings) || seen[i] {
				t.Fatalf("%q: order %v", values, order[:n])
			}
			seen[i] = true
			if !strings.Contains(lower, codings[i]) && !strings.Contains(lower, "*") {
				t.Fatalf("%q: %s accepted but never named", values, codings[i])
			}
		}
	})
}
