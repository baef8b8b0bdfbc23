package config

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Write prints c as TOML, every setting explicit: what `whisk check` shows.
// Reading the output back gives the same configuration.
func (c *Config) Write(w io.Writer) error {
	var b strings.Builder
	if c.File != "" {
		fmt.Fprintf(&b, "# effective configuration from %s\n", c.File)
	} else {
		b.WriteString("# effective configuration (no config file)\n")
	}
	sv := reflect.ValueOf(c.Server)
	for _, s := range Settings {
		if s.Scope == ServerScope {
			fmt.Fprintf(&b, "%s = %s\n", s.Name, encode(field(sv, s.Name)))
		}
	}
	for _, g := range c.Groups {
		fmt.Fprintf(&b, "\n[groups.%s]\n", quoteKey(g.Name))
		gv := reflect.ValueOf(g)
		for _, s := range Settings {
			if s.Scope == GroupScope {
				fmt.Fprintf(&b, "%s = %s\n", s.Name, encode(field(gv, s.Name)))
			}
		}
	}
	for _, s := range c.Sites {
		fmt.Fprintf(&b, "\n[sites.%s]\n", quoteKey(s.Name))
		fmt.Fprintf(&b, "hosts = %s\n", encode(reflect.ValueOf(s.Hosts)))
		fmt.Fprintf(&b, "default = %v\n", s.Default)
		fmt.Fprintf(&b, "tls_cert = %s\n", quote(s.TLSCert))
		fmt.Fprintf(&b, "tls_key = %s\n", quote(s.TLSKey))
		b.WriteString("mounts = [\n")
		for _, m := range s.Mounts {
			if m.Static != "" {
				fmt.Fprintf(&b, "  { path = %s, static = %s, compress = %v },\n", quote(m.Path), quote(m.Static), m.Compress)
				continue
			}
			fmt.Fprintf(&b, "  { path = %s, group = %s, compress = %v, max_body_size = %s },\n", quote(m.Path), quote(m.Group), m.Compress, FormatSize(int64(m.MaxBodySize)))
		}
		b.WriteString("]\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// encode writes one value as TOML.
func encode(v reflect.Value) string {
	switch v.Type() {
	case durationType:
		return quote(FormatDuration(time.Duration(v.Int())))
	case sizeType:
		return FormatSize(v.Int())
	}
	switch v.Kind() {
	case reflect.String:
		return quote(v.String())
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = quote(v.Index(i).String())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = quoteKey(k) + " = " + quote(v.MapIndex(reflect.ValueOf(k)).String())
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v.Interface())
}

// FormatDuration writes d in the largest unit that divides it: "30s",
// "2m", "1h", else Go's form ("1m30s", "250ms").
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// FormatSize writes n with the largest unit that divides it ("10M"), or
// as a plain number of bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		unit string
		mult int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return quote(fmt.Sprintf("%d%s", n/u.mult, u.unit))
		}
	}
	return strconv.FormatInt(n, 10)
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError && len(s) > i && s[i] >= 0x80:
			b.WriteString(`\uFFFD`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// quoteKey writes a key bare when TOML allows it, else quoted.
func quoteKey(k string) string {
	if k != "" && validBareKey(k) {
		return k
	}
	return quote(k)
}

func validBareKey(k string) bool {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
