"""Every case of tests/conformance/gjson_cases.jsonl (gjson v1.18.0's own answers,
recorded by gen_gjson_cases.py from an oracle) must give gjson's exact answer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.gen_gjson_cases import DOCUMENTED, DOCUMENTED_DOCS, GJSON_VERSION
from engine import gjson

CORPUS = Path(__file__).parent / "conformance" / "gjson_cases.jsonl"


def _cases():
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


CASES = _cases()


def test_corpus_is_large_and_from_kserves_gjson():
    assert GJSON_VERSION == "v1.18.0"
    assert len(CASES) >= 10000
    assert {c["gjson"] for c in CASES} == {GJSON_VERSION}
    paths = [c["path"] for c in CASES]
    assert any("@dig" in p for p in paths) and any("~" in p for p in paths)


def _check(case):
    doc = case["doc"].encode("utf-8")
    res = gjson.compile(case["path"]).get(doc)
    problems = []
    if res.exists != case["exists"]:
        problems.append(f"exists {res.exists} != {case['exists']}")
    if res.raw != case["raw"].encode("utf-8"):
        problems.append(f"raw {res.raw!r} != {case['raw']!r}")
    if res.type != case["type"]:
        problems.append(f"type {res.type} != {case['type']}")
    if res.str() != case["str"]:
        problems.append(f"str {res.str()!r} != {case['str']!r}")
    if gjson.valid(doc) != case["valid"]:
        problems.append(f"valid {gjson.valid(doc)} != {case['valid']}")
    return problems


def test_corpus_matches_reference():
    failures = []
    for n, case in enumerate(CASES):
        problems = _check(case)
        if problems:
            failures.append(f"line {n + 1}: doc={case['doc'][:60]!r} path={case['path']!r}: "
                            + "; ".join(problems))
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])


_BY_QUERY = {(c["doc"], c["path"]): c for c in CASES}


@pytest.mark.parametrize("key,path,exists,raw", DOCUMENTED, ids=[d[1] for d in DOCUMENTED])
def test_documented_v118_answers(key, path, exists, raw):
    # what gjson's SYNTAX.md documents for the post-1.14 constructs is in the corpus,
    # and the engine gives it
    case = _BY_QUERY[(DOCUMENTED_DOCS[key], path)]
    assert (case["exists"], case["raw"]) == (exists, raw)
    assert _check(case) == []
