"""Every case of tests/conformance/gjson_cases.jsonl (made by gen_gjson_cases.py from
the Go reference, plus hand-written v1.18 cases) must give gjson's exact answer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import gjson

CORPUS = Path(__file__).parent / "conformance" / "gjson_cases.jsonl"


def _cases():
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


CASES = _cases()


def test_corpus_is_large_and_covers_v118_additions():
    assert len(CASES) >= 2000
    sources = {c["source"] for c in CASES}
    assert sources == {"gjson-1.14.4-oracle", "hand-written-v1.18"}
    hand = [c["path"] for c in CASES if c["source"] == "hand-written-v1.18"]
    assert any("@dig" in p for p in hand) and any("~" in p for p in hand)


def _check(case):
    doc = case["doc"].encode("utf-8")
    res = gjson.compile(case["path"]).get(doc)
    problems = []
    if res.exists != case["exists"]:
        problems.append(f"exists {res.exists} != {case['exists']}")
    if res.raw != case["raw"].encode("utf-8"):
        problems.append(f"raw {res.raw!r} != {case['raw']!r}")
    if "type" in case and res.type != case["type"]:
        problems.append(f"type {res.type} != {case['type']}")
    if "str" in case and res.str() != case["str"]:
        problems.append(f"str {res.str()!r} != {case['str']!r}")
    if "valid" in case and gjson.valid(doc) != case["valid"]:
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


@pytest.mark.parametrize("case", [c for c in CASES if c["source"] == "hand-written-v1.18"],
                         ids=lambda c: c["path"])
def test_hand_written_v118(case):
    assert _check(case) == []
