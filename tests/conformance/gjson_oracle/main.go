// Command gjson_oracle answers GJSON queries with the reference implementation.
//
// It reads JSON lines {"doc": "...", "path": "..."} on stdin and writes one JSON line
// per query: {"exists", "raw", "type", "str", "valid"}.  The conformance generator
// (tests/conformance/gen_gjson_cases.py) drives it; the built binary is never committed.
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"github.com/tidwall/gjson"
)

type query struct {
	Doc  string `json:"doc"`
	Path string `json:"path"`
}

type answer struct {
	Exists bool   `json:"exists"`
	Raw    string `json:"raw"`
	Type   string `json:"type"`
	Str    string `json:"str"`
	Valid  bool   `json:"valid"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var q query
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			panic(err)
		}
		r := gjson.GetBytes([]byte(q.Doc), q.Path)
		a := answer{Exists: r.Exists(), Raw: r.Raw, Type: r.Type.String(),
			Str: r.String(), Valid: gjson.Valid(q.Doc)}
		if err := enc.Encode(&a); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
