"""Generate tests/conformance/gjson_cases.jsonl: gjson's own answers to many queries.

    python tests/conformance/gen_gjson_cases.py --oracle PATH [--oracle-version V]

KServe's router evaluates Switch and step conditions with github.com/tidwall/gjson at
the version its go.mod pins (GJSON_VERSION below), so the corpus records the answers of
exactly that version.  The generator asks an *oracle*, a program that answers with that
gjson, about every (document, path) pair below: a hand-picked cross product, the
constructs that changed after gjson 1.14 (tilde values, @dig, modifier arguments,
tidwall/pretty 1.2's NaN/Inf and key sorting), byte-level mutations of the documents,
and seeded random documents under random chains of path components.  It first checks
the oracle against answers that gjson's SYNTAX.md documents (DOCUMENTED), then writes
one JSON line per case carrying the version the oracle reported.  Neither gjson's code
nor an oracle is part of this repository; CI only reads the committed corpus.

Oracle protocol
---------------
``ORACLE --version`` prints one line, a JSON object whose "gjson" member is the
github.com/tidwall/gjson module version the oracle runs (a Go program finds it in
runtime/debug.ReadBuildInfo), for example
{"gjson":"v1.18.0","match":"v1.1.1","pretty":"v1.2.0"}; other members are shown, not
recorded.  For an oracle that cannot tell, pass --oracle-version.

``ORACLE`` without arguments reads JSON lines {"doc": DOC, "path": PATH} on stdin until
end of input and answers each, in order, with one JSON line

    {"exists": r.Exists(), "raw": r.Raw, "type": r.Type.String(), "str": r.String(),
     "valid": gjson.Valid(DOC)}

where r = gjson.Get(DOC, PATH) under gjson's default settings (modifiers enabled,
HTML characters escaped) and DOC and PATH are the UTF-8 bytes of the two strings.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "gjson_cases.jsonl"
# github.com/tidwall/gjson in KServe's go.mod
GJSON_VERSION = "v1.18.0"

DOCS = [
    # SYNTAX.md's example document
    '{"name":{"first":"Tom","last":"Anderson"},"age":37,"children":["Sara","Alex","Jack"],'
    '"fav.movie":"Deer Hunter","friends":[{"first":"Dale","last":"Murphy","age":44,'
    '"nets":["ig","fb","tw"]},{"first":"Roger","last":"Craig","age":68,"nets":["fb","tw"]},'
    '{"first":"Jane","last":"Murphy","age":47,"nets":["ig","tw"]}]}',
    # KServe router payloads
    '{"instances":[{"modelId":"1","x":[1,2]},{"modelId":"2","x":[3,4]}]}',
    '{"instances":[{"modelId":1},{"modelId":"3"}],"parameters":{"decision_picker":"ERROR"}}',
    '{"decision_picker":"ERROR","predictions":[{"label":"dog","score":0.9},{"label":"cat","score":0.1}]}',
    '{"decision_picker":"OK","predictions":[{"label":"cat"}]}',
    '{"predictions":[1,2,3],"model_name":"m","id":"x"}',
    # types and numbers
    '{"t":true,"f":false,"n":null,"i":0,"neg":-1.5,"e":1e3,"s":"","z":"0","one":"1",'
    '"T":"TRUE","big":12345678901234567890,"arr":[],"obj":{}}',
    '[1,"2",true,false,null,{"a":1},[2,3],-0.5,"x"]',
    '{"vals":[{"a":1,"b":true},{"a":2,"b":false},{"a":3,"b":null},{"a":4},{"a":5,"b":"true"},'
    '{"a":6,"b":0},{"a":7,"b":"yes"}]}',
    # escapes and unicode
    '{"a\\\\b":1,"a.b":2,"a*b":3,"a?b":4,"q\\"k":5,"uni\\u00e9":"\\u00e9t\\u00e9",'
    '"emoji":"\\ud83d\\ude00","tab":"a\\tb","sl":"a\\/b","e\\u0301":"x"}',
    '{"k":"h\\u00e9llo","esc":"\\"q\\"","arr":["\\u00e9",  "plain" , "x\\\\"]}',
    # nesting and whitespace
    ' \n{ "a" : { "b" : [ { "c" : 1 } , { "c" : [ 2 , 3 ] } ] } , "d" : [ [ 1 , 2 ] , [ 3 ] ] }\n',
    '{"users":[{"name":"a","roles":["x","y"]},{"name":"b","roles":["y"]},{"name":"c"}],'
    '"groups":{"x":[1,2],"y":[3]}}',
    '{"a":[[1,2],[3,[4,5]],6],"b":{"c":{"d":{"e":"deep"}}},"k":[{"x":1},{"y":2}]}',
    # modifier inputs
    '{"first":["a","b"],"last":["c","d"],"n":[1,2,3],"objs":[{"a":1},{"b":2},{"a":3}],'
    '"str":"{\\"in\\":[1,2]}","bad":"{no"}',
    # JSON lines
    '{"name":"Gilbert","age":61}\n{"name":"Alexa","age":34}\n{"name":"May","age":57}\n',
    # scalars and malformed documents
    '"just a string"', '42', 'true', 'null', '', '   ', '{', '[', '{"a":', '{"a":"b',
    '[1,2', '{"a":1,}', '{"a" 1}', 'nope', '{"a":[1,2,{"b":"c\\"}]}', '{"a":tru}',
    '{"a":01}', '{"a":-}', '{"a":1.}', '{"a":"\\x"}', '[1]]', '{"a":"b"} x',
]

PATHS = [
    "", "name", "name.last", "age", "children", "children.#", "children.1", "children.5",
    "child*.2", "c?ildren.0", "fav\\.movie", "friends.#.first", "friends.1.last",
    "friends.#(last==\"Murphy\").first", "friends.#(last==\"Murphy\")#.first",
    "friends.#(age>45)#.last", "friends.#(first%\"D*\").last",
    "friends.#(first!%\"D*\").last", "friends.#(nets.#(==\"fb\"))#.first",
    "children.#(!%\"*a*\")", "children.#(%\"*a*\")#", "friends.#(age>=47)#.age",
    "friends.#(age<47)#.age", "friends.#(age<=44).first", "friends.#(age!=44)#.first",
    "friends.#(age==68).first", "friends.#(first)#.first", "friends.#(nope)#",
    "friends.#(nope)", "friends.#.nets.#", "friends.#.nets.0", "friends.#(age>40)#|#",
    "friends.#(age>40)#.first|@reverse", "friends.0.nets|@reverse",
    "instances.#(modelId==\"2\")", "instances.#(modelId==\"1\")", "instances.#(modelId==2)",
    "instances.#(modelId==1)", "instances.#(modelId=\"2\")", "instances.#(modelId==\"3\")",
    "instances.#(modelId)", "instances.#(modelId==\"2\").x", "instances.#(modelId==\"2\")#.x",
    "[@this].#(decision_picker==ERROR)", "[@this].#(decision_picker==\"ERROR\")",
    "[@this].#(decision_picker!=ERROR)", "[@this].#(decision_picker==OK)",
    "[@this].0", "[@this]|0", "[@this].#", "[@this]|#", "[@this].1", "[@this].0.name",
    "[@this].#.name", "[@this].#(name)#", "[@this].#(age>40)#|0", "[@this].#(n==null)",
    "[@this].#(a)", "[@this].#(==\"just a string\")", "[@this].#(==42)", "[@this].*",
    "[@this].@reverse", "[@this]|@this", "[@this].#(friends.#(age>45))#.age",
    "predictions.#(label==\"dog\")", "predictions.#(label==dog)", "predictions.#(score>0.5)",
    "predictions.#(score<0.5)#.label", "predictions.#", "predictions.0", "predictions.#.label",
    "parameters.decision_picker", "model_name", "id",
    "t", "f", "n", "i", "neg", "e", "s", "z", "one", "T", "big", "arr", "obj", "arr.#",
    "obj.a", "0", "1", "2", "5", "6", "6.1", "#", "#(==\"x\")", "#(==true)", "#(>0)#",
    "#(==false)", "#(a==1)", "#(<1)#", "#(!=null)#", "#(==null)",
    "vals.#(b==true)#.a", "vals.#(b==false)#.a", "vals.#(b!=true)#.a", "vals.#(b>false)#.a",
    "vals.#(b<true)#.a", "vals.#(b)#.a", "vals.#(b==\"true\")#.a", "vals.#(a>3)#.b",
    "a\\\\b", "a\\.b", "a\\*b", "a\\?b", "a*", "a?b", "q\\\"k", "uni\u00e9", "uni*", "emoji",
    "tab", "sl", "k", "esc", "arr.0", "arr.#(==\"\u00e9\")", "arr.2", "e\u0301",
    "a.b.0.c", "a.b.1.c.1", "a.b.#.c", "d.0.1", "d.#.#", "d.1.0", "a.b.#(c==1)",
    "a.b.#(c.#>1).c", "users.#(roles.#(==\"y\"))#.name", "users.#(roles.#(==\"x\")).name",
    "users.#.roles.#", "groups.x", "groups.*", "groups.x|#", "a.1.1.0", "b.c.d.e", "b.*.d.e",
    "k.#.x", "k.#.y", "k.#(y).y",
    "@this", "@reverse", "@ugly", "@pretty", "@valid", "@keys", "@values", "@flatten",
    "@join", "@tostr", "@fromstr", "@group", "@nope", "@this.name", "@this|name",
    "first|@reverse", "n|@reverse", "n.@reverse", "objs|@join", "objs.@join",
    "objs|@join:{\"preserve\":true}", "a|@flatten", "a|@flatten:{\"deep\":true}",
    "str|@fromstr", "str|@fromstr|in.1", "bad|@fromstr", "name|@tostr", "n|@tostr",
    "@group", "{first,last}|@group", "@pretty:{\"sortKeys\":true}",
    "@pretty:{\"indent\":\"\\t\",\"prefix\":\"  \"}", "@pretty:{\"width\":10}",
    "b|@pretty", "users|@ugly", "users.0|@keys", "users.0|@values", "@keys|#",
    "[name,age]", "[name.first,age,nope]", "{name,age}", "{\"n\":name,\"a\":age}",
    "{name.first,\"x\":children.1}", "[name,age]|@reverse", "[name,age].0",
    "{a:name,b:age}.b", "[first,last]|@flatten", "{first,last}.first.0",
    "[friends.#.first,children]", "{friends.#(age>45)#.last}", "[!true,!false,!null]",
    "{\"t\":!true,\"n\":!123,\"s\":!\"x\"}", "!true", "!false", "!null", "!\"hello\"",
    "!123", "!-1.5", "!{\"a\":1}", "![1,2]", "!nan", "!inf", "!nope", "!{\"a\":1}.a",
    "![1,2]|#", "!true.x",
    "..#", "..0", "..1.name", "..#.name", "..#(age>40)#.name", "..#(name==\"May\").age",
    "..2.age", "..3",
    "name|last", "name.@reverse", "children|0", "children.0|@tostr", "age|@tostr",
    "friends|#(age>45)#|#", "friends.#(age>45)#|0.first", "friends|1|first",
    "name.", "name..last", ".name", "|name", "name|", "friends.#(", "friends.#(age>45",
    "friends.#(age>)", "friends.#[age>45]#.first", "friends.#(first==\"Dale\"", "[name",
    "{name", "@", "!", "#.", "friends.#.", "*", "?", "**", "*.first", "name.*", "name.?ast",
    "a\\", "friends.#(last==Murphy)#.first", "friends.#(last==\"Mur\\\"phy\").first",
    "friends.#(nets.#(%\"i*\"))#.last", "friends.#(nets.#(==\"tw\")#)#.first",
]

# SYNTAX.md's tilde example as gjson 1.14 documented it, the same with v1.18's "data"
# in the first value, and the variant from tidwall/gjson issue #327 that made ~false
# mean "false-ish" instead of "not true-ish"
TILDE_VALS = ('{"vals":[{"a":1,"b":"true"},{"a":2,"b":true},{"a":3,"b":false},{"a":4,"b":"0"},'
              '{"a":5,"b":0},{"a":6,"b":"1"},{"a":7,"b":1},{"a":8,"b":"true"},'
              '{"a":9,"b":false},{"a":10,"b":null},{"a":11}]}')
TILDE_SYNTAX_V118 = TILDE_VALS.replace('{"a":1,"b":"true"}', '{"a":1,"b":"data"}')
TILDE_ISSUE_327 = TILDE_VALS.replace('"b":"true"},{"a":2,"b":true}',
                                     '"b":"something"},{"a":2,"b":"else"}')

DOCUMENTED_DOCS = {
    "tilde": TILDE_VALS,
    "tilde118": TILDE_SYNTAX_V118,
    "issue327": TILDE_ISSUE_327,
    "vals": DOCS[8],
    "syntax": DOCS[0],
    "kserve": DOCS[3],
}

# (doc key, path, exists, raw) that gjson v1.18's SYNTAX.md and the commits it cites
# (tilde types, @dig) document: ~true is true-ish (true, a "true"/"1"/"t" string, a
# non-zero number), ~false is false-ish or missing, ~null is null or missing, ~* is any
# existing value.  An oracle that disagrees is not v1.18, whatever it reports.
DOCUMENTED = [
    ("tilde118", "vals.#(b==~true)#.a", True, "[2,6,7,8]"),
    ("tilde118", "vals.#(b==~false)#.a", True, "[3,4,5,9,10,11]"),
    ("tilde118", "vals.#(b==~null)#.a", True, "[10,11]"),
    ("tilde118", "vals.#(b==~*)#.a", True, "[1,2,3,4,5,6,7,8,9,10]"),
    ("tilde118", "vals.#(b!=~*)#.a", True, "[11]"),
    ("tilde", "vals.#(b==~true)#.a", True, "[1,2,6,7,8]"),
    ("tilde", "vals.#(b==~false)#.a", True, "[3,4,5,9,10,11]"),
    ("tilde", "vals.#(b==~null)#.a", True, "[10,11]"),
    ("tilde", "vals.#(b==~*)#.a", True, "[1,2,3,4,5,6,7,8,9,10]"),
    ("tilde", "vals.#(b!=~*)#.a", True, "[11]"),
    ("issue327", "vals.#(b==~false)#.a", True, "[3,4,5,9,10,11]"),
    ("issue327", "vals.#(b==~true)#.a", True, "[6,7,8]"),
    ("issue327", "vals.#(b!=~false)#.a", True, "[1,2,6,7,8]"),
    ("vals", "vals.#(b==~true)#.a", True, "[1,5]"),
    ("vals", "vals.#(b==~false)#.a", True, "[2,3,4,6]"),
    ("vals", "vals.#(b==~null)#.a", True, "[3,4]"),
    ("vals", "vals.#(b==~*)#.a", True, "[1,2,3,5,6,7]"),
    ("vals", "vals.#(b!=~*)#.a", True, "[4]"),
    ("vals", "vals.#(b!=~true)#.a", True, "[2,3,4,6,7]"),
    ("vals", "vals.#(b!=~false)#.a", True, "[1,5,7]"),
    ("vals", "vals.#(b!=~null)#.a", True, "[1,2,5,6,7]"),
    ("vals", "vals.#(b==~true).a", True, "1"),
    ("vals", "vals.#(b==~null).a", True, "3"),
    ("vals", "vals.#(b==~nope)#.a", True, "[]"),
    ("vals", "vals.#(c==~true)", False, ""),
    ("vals", "vals.#(c==~false).a", True, "1"),
    ("vals", "vals.#(a==~true)#.a", True, "[1,2,3,4,5,6,7]"),
    ("syntax", "@dig:first", True, '["Tom","Dale","Roger","Jane"]'),
    ("syntax", "@dig:age", True, "[37,44,68,47]"),
    ("syntax", "@dig:nope", True, "[]"),
    ("syntax", "friends|@dig:nets.0", True, '["ig","fb","ig"]'),
    ("syntax", "@dig:first|#", True, "4"),
    ("syntax", "@dig:last|@reverse|0", True, '"Murphy"'),
    # in '[...]' the ':' after @dig names a selector, so this selects plain "age";
    # after a '"k":' name the modifier keeps its argument
    ("syntax", "[@dig:age]|0", True, "37"),
    ("syntax", "{\"ages\":@dig:age}", True, '{"ages":[37,44,68,47]}'),
    ("kserve", "@dig:label", True, '["dog","cat"]'),
    ("kserve", "predictions.#(score==~true)#.label", True, '["dog","cat"]'),
    ("kserve", "predictions.#(missing==~null)#.label", True, '["dog","cat"]'),
]

# What changed between the gjson 1.14 the corpus first came from and v1.18.0, asked on
# every main document: the tilde types, @dig, simple modifier arguments that keep
# '|' inside brackets, parens and quotes, and @tostr's \b and \f.
V118_PATHS = [
    "vals.#(b==~true)#.a", "vals.#(b==~false)#.a", "vals.#(b==~null)#.a",
    "vals.#(b==~*)#.a", "vals.#(b!=~*)#.a", "vals.#(b!=~null)#.a", "vals.#(b==~nope)#.a",
    "vals.#(b!=~nope)#.a", "vals.#(b==~TRUE)#.a", "vals.#(b>~false)#.a",
    "vals.#(b==~)#.a", "vals.#(b=~true)#.a", "vals.#(b%~true)#.a",
    "friends.#(age==~true)#.first", "friends.#(nope==~false)#.first",
    "friends.#(nope==~null).first", "friends.#(first==~*)#.age", "friends.#(first!=~*)",
    "children.#(==~true)#", "children.#(==~*)#", "children.#(!=~false)#",
    "#(==~true)#", "#(==~false)#", "#(==~null)#", "#(==~*)#", "#(!=~*)#",
    "predictions.#(score==~true)#.label", "instances.#(modelId==~true)#",
    "instances.#(modelId==~false)#", "t|~true", "~true", "[@this].#(t==~true)",
    "@dig:first", "@dig:age", "@dig:nope", "@dig:#", "@dig:0", "@dig:1.first",
    "@dig:nets.#", "@dig:#(==\"tw\")", "@dig:#(last==\"Murphy\")#.first",
    "@dig:#(last==\"Mur|phy\")", "@dig:#(first%\"J*\")#.last|@reverse",
    "@dig:friends.#(nets.#(==\"fb\"))#.first", "@dig:c", "@dig:x", "@dig:modelId",
    "@dig:label|0", "@dig:a|#", "@dig:b.c", "@dig:*", "@dig:@this", "@dig:@reverse",
    "@dig:[first,last]", "@dig:{first}", "@dig", "@dig:", "@dig:|#", "@dig:..0",
    "friends|@dig:#(age>45)#.first", "friends.@dig:first", "name|@dig:last",
    "[@dig:age,age]", "{@dig:age}", "{\"d\":@dig:first|#}", "@dig:first.@reverse",
    "@reverse:(a|b)|0", "@reverse:[1|2]|0", "@reverse:\"a|b\"|0", "@this:{\"a\":\"|\"}|age",
    "@this:x{a|b}y|age", "@this:x(|)|age", "@this:x\"|\"|age", "@this:\"|",
    "@this:(|", "@this:[|]", "@this:(((|)))|name", "@this:(\"|)\"|)|name",
    "@this:[\"]|\"]|name", "@this:\"\\\"|\"|name", "@keys:(x|y)|0", "@join:(|)",
    "@pretty:(|)|age", "@flatten:[|]|0", "@this:|name", "@this:x|name",
    "@tostr", "name|@tostr", "children|@tostr", "s|@tostr", "tab|@tostr",
    "{name,\"k\\b\":age}", "{\"\\f\":age}",
]

# Documents for what changed: raw control bytes (@tostr writes \b and \f since v1.18),
# tidwall/pretty 1.2's NaN/Inf values and key order (keys compared unescaped, equal
# keys by value), numbers in every spelling strconv.ParseFloat knows, and long strings
# with escaped quotes that gjson 1.18's faster squashing skips eight bytes at a time.
V118_DOCS = [
    '{"s":"x\bx\fy\x01z\x1f","b\b":1,"tab":"\t"}', '"\b\f\n\r\t\x00\x1f<>&\u2028"',
    '[1,"\x08",{"\x0c":"\b"}]',
    '{"a":NaN,"b":[Inf,-Inf,+Inf,nan,inf,n,nul,null,Infinity,-Infinity,+NaN],"c":{"x":NaN}}',
    '[NaN, 1, Inf]', 'NaN', '+Inf', '-Infinity', 'nan', 'Inf',
    '{"b":1,"a":2,"a":1,"a":"x","a":null,"a":true,"a":false,"a":[1],"a":{"z":1},'
    '"a":"w","a":1e2,"a":-3}',
    '{"b\\u0041":1,"bA":0,"b\\"":2,"b\\\\":3,"\\u00e9":4,"\u00e9":5,"\\ud800":6,'
    '"\\ud83d\\ude00":7,"\\x":8,"\t":9,"":10,"\\u0000":11}',
    '{"a":NaN,"a":1,"a":0,"a":NaN,"a":-1}', '{"k":"b","k":"a","k":"a\\u0000","k":"\\u0041"}',
    '{"k":1.0,"k":1,"k":-0,"k":0,"k":1e0,"k":"1","k":0x10,"k":1_0,"k":+1}',
    '{"z":{"b":2,"a":1},"y":[{"d":1,"c":2}],"x":"\\u0078"}',
    '{"k":' + ",".join(f'"v{i % 7}"' for i in range(45)) + '}',
    '{' + ",".join(f'"k{(i * 37) % 50:02d}":{i}' for i in range(50)) + '}',
    '{' + ",".join(f'"k":{(i * 13) % 30}' for i in range(60)) + '}',
    '[' + ",".join(n for n in [
        "+nan", "-nan", "+NaN", "nAn", "Infinity", "+Infinity", "-inf", "iNF", "1e400",
        "-1e400", "1e-400", "0x10", "0x1p4", "0x1P-2", "0X1p4", "1.5e", ".5", "5.", "-.5",
        "+5", "0b101", "0o17", "1_0", "0x1_0p0", "0x_1p0", "1__0", "_1", "1_", "0x1.8p1",
        "0x.8p1", "-0x1p4", "+0x1p4", "00012", "1e5_0", "0x1p1_0", "-0", "1e+5", "1E-5",
        "0x1e2p0", "Infin", "infinityx", "+-1", "--1", "1_000.5_5", "1._5", "1e_5",
        "0x1p_4", "0_x1p0", "0x1_p0", "+_1"]) + ']',
    '{"a":"' + 'x' * 20 + '\\"' + 'y' * 9 + '\\\\","b":{"c":"' + 'q' * 15 + '\\\\\\"}\\\\"},'
    '"d":["' + 'z' * 17 + '","\\"' + 'w' * 8 + '"],"e":1}',
    '{"a":{"s":"' + 'p' * 30 + '\\"}","t":[1,2]},"b":2}',
    '{"a":{"s":"' + 'p' * 30 + '\\\\"}","t":[1,2]},"b":2}',
    '[{"k":"0123456789\\"0123456789"},{"k":"' + '\\\\' * 9 + '"},"' + 'e' * 7 + '"]',
]

V118_DOC_PATHS = [
    "@tostr", "s|@tostr", "1|@tostr", "2|@tostr", "{\"k\bq\":s}", "{b\b}", "@keys",
    "@values", "@pretty", "@pretty:{\"sortKeys\":true}", "@pretty:{\"width\":5}",
    "@pretty:{\"sortKeys\":true,\"width\":200}", "@pretty:{\"sortKeys\":true,\"indent\":\"\\t\"}",
    "@ugly", "@this", "@valid", "@reverse", "@join", "@flatten", "@fromstr", "a", "b",
    "b.0", "b.#", "b.10", "c.x", "k", "z|@pretty:{\"sortKeys\":true}", "y.0|@keys",
    "#", "#(>0)#", "#(==0)#", "#(!=0)#", "#(<0)#", "#(>=10)#", "#.k", "0.k", "1.k", "2",
    "a.s", "a.t", "a.t.1", "b", "d.1", "e", "d.#", "..#", "@dig:c", "@dig:t|0",
] + [f"{i}" for i in range(50)]

# Found by fuzzing against v1.18.0: a '#(...)#' under an array index answers without a
# hit while the scan of that array goes on, and what follows must still see it; a
# '[' or '{' head that never closes (gjson goes on with an empty path) or that is
# followed by more than '.' or '|' (gjson goes on with what follows).
SCAN_ON_DOCS = [
    '[[{"a":1},2],3]', '[[{"a":1},2],3,{"\\u0041":1}]', '{"x":[[{"a":1},2],3,"\\u00e9"]}',
    '[[[{"a":1}],[{"a":1},{"a":2}],"\\u00e9"],"\\u00e9",{"\\u00e9":1}]',
    '{"a":1}\n[[{"a":1}],"\\u00e9"]\n"\\u00e9"',
    '{"\\x":8,"\t":9,"" 10,', '{"a":1,"" 10,', '{"x":1,"[a]x":2,"":3,"b]":4,"[b]":5}',
    '{"":{"a":5},"a":1}',
]
SCAN_ON_PATHS = [
    "0.#(a==1)#|@join", "0.#(a==1)#|@reverse", "0.#(a==1)#|0", "0.#(a==1)#",
    "0.#(a==1)#.a|@join", "0.#(a==1)#|@keys", "0.0.#(a==1)#|@ugly", "0.1.#(a==1)#|0",
    "x.0.#(a==1)#|@this", "..1.0.#(a==1)#|0", "..0.#(a==1)#|@join", "[@this].0.#(a==1)#|0",
    "{name", "{a", "[a", "[a]x", "[a][b]", "{a}x", "[a]0", "[a]b]", "[a,b", "[a]]", "[]x",
    "{}x", "{a]", "[a]\\x", "[a]@this", "[a]!true", "{\"a\":b}a", "[(]x", "[\")]\"]x",
    "[a\\]]x", "{a,.a", "[1]1",
]

# Query values in the spellings strconv.ParseFloat accepts or refuses.
NUMBER_QUERIES = [
    "+nan", "-nan", "NaN", "nan", "inf", "+Inf", "-Infinity", "1_0", "0x1_0p0", "0x_1p0",
    "1e5_0", "0x1p1_0", "1__0", "0x10", "0x1p4", ".5", "5.", "+5", "1e400", "00012", "_1",
    "1_", "0b101",
]
NUMBER_QUERY_DOCS = ['[1,2,0,-1,16,10]', '[{"a":1},{"a":0},{"a":"0"},{"a":16},{"a":-1}]']


def fuzz_pairs(rng: random.Random, count: int, docs=None, paths=None):
    """Truncations and byte flips of the documents under the main paths."""
    docs = DOCS[:16] if docs is None else docs
    paths = PATHS if paths is None else paths
    for _ in range(count):
        doc = rng.choice(docs)
        if rng.random() < 0.5:
            doc = doc[: rng.randrange(len(doc) + 1)]
        else:
            k = rng.randrange(len(doc))
            doc = doc[:k] + rng.choice('{}[]",:\\ 0a') + doc[k + 1:]
        yield doc, rng.choice(paths)


RANDOM_KEYS = ["a", "b", "c", "name", "x.y", "a*", "\u00e9", "", "k\"q", "1", "0"]
RANDOM_SCALARS = [None, True, False, 0, 1, -2.5, 1e21, "x", "", "true", "1", "a\"b",
                  "\u00e9", "0", "*", 3]
RANDOM_COMPONENTS = [
    "a", "b", "c", "name", "0", "1", "2", "#", "*", "?", "a*", "x\\.y", "k\\\"q", "\u00e9",
    "@this", "@reverse", "@keys", "@values", "@flatten", "@join", "@ugly", "@pretty",
    "@valid", "@tostr", "@fromstr", "@group", "#(a)", "#(a==1)", "#(a==1)#", "#(==\"x\")",
    "#(==true)#", "#(b>0)#", "#(a!=null)#", "#(a%\"*\")", "#(a<\"b\")#", "#(#>1)",
    "#(a.#>0)#", "[a,b]", "{a,b}", "{\"k\":a}", "!true", "!1", "#.a", "#.#", "[@this]",
    "..0",
]
# gjson 1.18's additions and the scalars that exercise its faster squashing (long
# strings with escaped quotes and backslashes) and @tostr's control characters
V118_COMPONENTS = [
    "#(a==~true)#", "#(a==~false)#", "#(a==~null)#", "#(a==~*)#", "#(a!=~*)#", "#(==~true)#",
    "#(b!=~false)", "@dig:a", "@dig:b", "@dig:#", "@dig:#(==\"x\")", "@dig:#(a==1)#",
    "@dig:#(a|b)", "@this:(a|b)", "@reverse:[1|2]", "@pretty:{\"sortKeys\":true}",
    "@tostr",
]
V118_SCALARS = RANDOM_SCALARS + [
    "0123456789" * 2, 'q"' * 7, "\\" * 9, "\b\f\x01", "\u2028<&>", "\\\"" * 4,
    "tail\\", float("nan"), float("inf"),
]


def random_value(rng: random.Random, depth: int = 0, scalars=RANDOM_SCALARS):
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice(scalars)
    if r < 0.65:
        return [random_value(rng, depth + 1, scalars) for _ in range(rng.randrange(4))]
    return {rng.choice(RANDOM_KEYS): random_value(rng, depth + 1, scalars)
            for _ in range(rng.randrange(4))}


def random_pairs(rng: random.Random, count: int, components=RANDOM_COMPONENTS,
                 scalars=RANDOM_SCALARS):
    """Random documents (some truncated) under random chains of path components."""
    for _ in range(count):
        doc = json.dumps(random_value(rng, 0, scalars), ensure_ascii=rng.random() < 0.5,
                         indent=rng.choice([None, None, 1]))
        if rng.random() < 0.15:
            doc = doc[: rng.randrange(len(doc) + 1)]
        path = rng.choice(components)
        for _ in range(rng.randrange(4)):
            path += rng.choice(".|") + rng.choice(components)
        yield doc, path


def oracle_version(exe: str, given: str | None) -> str:
    if given:
        return given
    # stdin is closed so that an oracle which ignores --version ends at once
    out = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    try:
        info = json.loads(out.stdout)
        version = info["gjson"]
    except (ValueError, TypeError, KeyError):
        raise SystemExit("the oracle did not report its gjson version; "
                         "pass --oracle-version") from None
    print(f"oracle: {json.dumps(info)}")
    return version


def oracle_cases(exe: str, pairs):
    lines = "".join(json.dumps({"doc": d, "path": p}) + "\n" for d, p in pairs)
    out = subprocess.run([exe], input=lines, capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    if len(answers) != len(pairs):
        raise SystemExit(f"oracle answered {len(answers)} of {len(pairs)} queries")
    return answers


def check_documented(exe: str) -> None:
    pairs = [(DOCUMENTED_DOCS[key], path) for key, path, _, _ in DOCUMENTED]
    wrong = [f"  {path!r} on {key}: {a['exists']} {a['raw']!r}, documented {exists} {raw!r}"
             for (key, path, exists, raw), a in zip(DOCUMENTED, oracle_cases(exe, pairs))
             if (a["exists"], a["raw"]) != (exists, raw)]
    if wrong:
        raise SystemExit("the oracle disagrees with gjson's documentation:\n" + "\n".join(wrong))


def all_pairs():
    main_docs = DOCS[:16] + [TILDE_VALS, TILDE_SYNTAX_V118, TILDE_ISSUE_327]
    pairs = [(d, p) for d in DOCS[:16] for p in PATHS]
    pairs += [(d, p) for d in DOCS[16:] for p in PATHS[:40]]
    pairs += list(fuzz_pairs(random.Random(20240501), 600))
    pairs += list(random_pairs(random.Random(20240502), 1500))
    pairs += [(DOCUMENTED_DOCS[key], path) for key, path, _, _ in DOCUMENTED]
    pairs += [(d, p) for d in main_docs for p in V118_PATHS]
    pairs += [(d, p) for d in V118_DOCS for p in V118_DOC_PATHS]
    pairs += [(d, p) for d in SCAN_ON_DOCS for p in SCAN_ON_PATHS]
    pairs += [(d, f"{sel}(a{op}{n})#") for d in NUMBER_QUERY_DOCS
              for sel in ("#", "") for op in ("==", ">", "!=") for n in NUMBER_QUERIES]
    pairs += [(d, f"#({op}{n})#") for d in NUMBER_QUERY_DOCS[:1]
              for op in ("==", ">", "<", "!=") for n in NUMBER_QUERIES]
    pairs += list(fuzz_pairs(random.Random(20250901), 800, V118_DOCS + main_docs,
                             V118_PATHS + V118_DOC_PATHS))
    pairs += list(random_pairs(random.Random(20250902), 1500,
                               RANDOM_COMPONENTS + V118_COMPONENTS, V118_SCALARS))
    return list(dict.fromkeys(pairs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oracle", required=True, help="the oracle program (see the protocol)")
    ap.add_argument("--oracle-version", help="gjson version of an oracle that cannot tell")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    version = oracle_version(args.oracle, args.oracle_version)
    if version != GJSON_VERSION:
        raise SystemExit(f"the oracle runs gjson {version}; KServe pins {GJSON_VERSION}")
    check_documented(args.oracle)
    pairs = all_pairs()
    answers = oracle_cases(args.oracle, pairs)
    with args.out.open("w", encoding="utf-8") as f:
        for (doc, path), a in zip(pairs, answers):
            f.write(json.dumps({"doc": doc, "path": path, "exists": a["exists"],
                                "raw": a["raw"], "type": a["type"], "str": a["str"],
                                "valid": a["valid"], "gjson": version},
                               ensure_ascii=False) + "\n")
    print(f"wrote {len(pairs)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
