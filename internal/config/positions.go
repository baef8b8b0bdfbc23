package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex maps key paths ("groups.blog.processes", "sites.main.mounts[1].path")
// to the line where the key is written, so errors can name it.
type lineIndex map[string]int

// indexLines walks a TOML document (already known to parse) and records the
// line of every key, table header and array element.
func indexLines(data []byte) lineIndex {
	idx := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{} // next index of each array of tables
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			prefix = keyPath(e.Key())
			idx.add(prefix, line(&p, e))
		case unstable.ArrayTable:
			k := keyPath(e.Key())
			prefix = fmt.Sprintf("%s[%d]", k, arrays[k])
			arrays[k]++
			idx.add(prefix, line(&p, e))
		case unstable.KeyValue:
			k := join(prefix, keyPath(e.Key()))
			idx.add(k, line(&p, e))
			idx.value(&p, e.Value(), k)
		}
	}
	return idx
}

// value records the keys inside inline tables and the elements of arrays.
func (idx lineIndex) value(p *unstable.Parser, n *unstable.Node, path string) {
	switch n.Kind {
	case unstable.InlineTable:
		it := n.Children()
		for it.Next() {
			kv := it.Node()
			k := join(path, keyPath(kv.Key()))
			idx.add(k, line(p, kv))
			idx.value(p, kv.Value(), k)
		}
	case unstable.Array:
		it := n.Children()
		for i := 0; it.Next(); i++ {
			k := fmt.Sprintf("%s[%d]", path, i)
			idx.add(k, line(p, it.Node()))
			idx.value(p, it.Node(), k)
		}
	}
}

func (idx lineIndex) add(path string, line int) {
	if _, ok := idx[path]; !ok && line > 0 {
		idx[path] = line
	}
}

// lookup returns the line of path, or of its nearest enclosing key.
func (idx lineIndex) lookup(path string) int {
	for path != "" {
		if l, ok := idx[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// line returns the line a node starts on: its first key part's, or its own.
func line(p *unstable.Parser, n *unstable.Node) int {
	switch n.Kind {
	case unstable.KeyValue, unstable.Table, unstable.ArrayTable:
		if it := n.Key(); it.Next() {
			n = it.Node()
		}
	}
	if n.Raw.Length == 0 && len(n.Data) > 0 {
		defer func() { _ = recover() }() // Data not inside the document: no line
		return p.Shape(p.Range(n.Data)).Start.Line
	}
	if n.Raw.Length == 0 {
		return 0
	}
	return p.Shape(n.Raw).Start.Line
}

func keyPath(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
