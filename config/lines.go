package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/caisson/caisson/api"
)

// keyLines finds the line of each key a document sets, tables included
// ("cni" for [cni], "cni.timeout" for its timeout; an array of tables's
// elements by their index, "hooks.exec[1].path"), so that a value refused
// after decoding can be pointed at; and the key set on each line (the
// last one). It fails on a syntax error, without saying where.
func keyLines(data []byte) (Lines, map[int]string, error) {
	lines, atLine := Lines{}, map[int]string{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	elements := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = keyParts(e)
			add(&p, e, table, lines, atLine)
		case unstable.ArrayTable:
			table = keyParts(e)
			name := strings.Join(table, ".")
			table[len(table)-1] += "[" + strconv.Itoa(elements[name]) + "]"
			elements[name]++
			add(&p, e, table, lines, atLine)
		case unstable.KeyValue:
			add(&p, e, append(append([]string(nil), table...), keyParts(e)...), lines, atLine)
		}
	}
	if err := p.Error(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return lines, atLine, nil
}

// add records the line of the key of e: in lines unless an earlier
// expression set the key (the decoder refuses a key set twice anyway),
// and in atLine.
func add(p *unstable.Parser, e *unstable.Node, key []string, lines Lines, atLine map[int]string) {
	it := e.Key()
	if !it.Next() {
		return
	}
	k := strings.Join(key, ".")
	line := p.Shape(it.Node().Raw).Start.Line
	if _, ok := lines[k]; !ok {
		lines[k] = line
	}
	atLine[line] = k
}

// keyParts are the parts of a table's or a key-value's key.
func keyParts(e *unstable.Node) []string {
	var parts []string
	it := e.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}
