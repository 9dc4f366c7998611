"""The ``ige`` command: exit codes and output of validate and explain, in-process and once
as a subprocess."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
INVALID = ROOT / "tests" / "data" / "invalid"


def run(*argv, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


# -- validate -------------------------------------------------------------------------

def test_validate_clean_file():
    code, out, err = run("validate", EX / "dog-cat.yaml")
    assert (code, out) == (0, "")
    assert err == "1 file(s): 0 error(s), 0 warning(s)\n"


def test_validate_error_file_one_line_per_diagnostic():
    code, out, _ = run("validate", INVALID / "weight-out-of-range.yaml")
    assert code == 1
    assert out.splitlines() == [
        "spec.nodes.root.steps[0].weight: error: Invalid value: 120: must be less than or equal to 100",
        "spec.nodes.root.steps[1].weight: error: Invalid value: -20: must be greater than or equal to 0",
    ]


def test_validate_warnings_only_exit_zero():
    code, out, err = run("validate", INVALID / "warn-unreachable.yaml")
    assert code == 0
    assert out == 'spec.nodes.orphan: warning: node "orphan" is not reachable from root and never runs\n'
    assert "0 error(s), 1 warning(s)" in err


def test_validate_several_files_prefixes_file_names():
    files = [EX / "canary.yaml", INVALID / "cycle.yaml", INVALID / "warn-data.yaml"]
    code, out, err = run("validate", *files)
    assert code == 1
    assert out.splitlines() == [
        f"{files[1]}: spec.nodes.left.steps[0].nodeName: error: cycle: root -> left -> root",
        f"{files[2]}: spec.nodes.root.steps[1].data: warning: data \"$response.predictions\": "
        "KServe's router ignores the path and sends the original request, and so does the engine "
        "unless asked (--data-paths, IGE_DATA_PATHS=1, or the TrafficPolicy's data), which sends "
        "part of the previous response",
    ]
    assert err == "3 file(s): 1 error(s), 1 warning(s)\n"


def test_validate_multi_document_file_names_each_graph(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text((EX / "canary.yaml").read_text() + "---\n"
                    + (INVALID / "empty-node.yaml").read_text())
    code, out, _ = run("validate", both)
    assert code == 1
    assert out == (f"{both}[empty-node]: spec.nodes.tail.steps: error: "
                   "Required value: a node needs at least one step\n")


@pytest.mark.parametrize("name, where, message", [
    ("malformed.yaml", ":11:8", "invalid YAML: expected <block end>, but found "
                                "'<block sequence start>' (while parsing a block mapping)"),
    ("malformed.json", ":7:73", "invalid JSON: Expecting value"),
    ("duplicate-key.yaml", ":11:5", "duplicate key 'root'"),
])
def test_validate_malformed_reports_line_and_column(name, where, message):
    code, out, err = run("validate", INVALID / name)
    assert code == 1
    assert out == f"{INVALID / name}{where}: error: {message}\n"
    assert "Traceback" not in out + err


def test_validate_missing_file_and_directory_no_traceback(tmp_path):
    code, out, err = run("validate", tmp_path / "missing.yaml", tmp_path, EX / "switch.yaml")
    assert code == 1
    assert out.splitlines() == [f"{tmp_path / 'missing.yaml'}: error: no such file",
                                f"{tmp_path}: error: is a directory"]
    assert "Traceback" not in err


def test_validate_stdin():
    code, out, _ = run("validate", "-", stdin=(INVALID / "no-root.yaml").read_text())
    assert code == 1
    assert out.startswith("spec.nodes: error: root node not found")
    code, out, _ = run("validate", "-", stdin='{"nodes": {"root": {"routerType": "Sequence", '
                                            '"steps": [{"serviceName": "m"}]}}}')
    assert (code, out) == (0, "")


def test_validate_json_output():
    files = [INVALID / "bad-name.yaml", INVALID / "malformed.json", EX / "sequence.yaml"]
    code, out, err = run("validate", "--json", *files)
    assert code == 1 and err == ""
    report = json.loads(out)
    assert report["valid"] is False and (report["errors"], report["warnings"]) == (2, 0)
    name, syntax = report["diagnostics"]
    assert name == {"file": str(files[0]), "graph": "Dog_Cat", "severity": "error",
                    "path": "metadata.name", "line": None, "column": None,
                    "message": name["message"]}
    assert name["message"].startswith('The InferenceGraph "Dog_Cat" is invalid')
    assert syntax == {"file": str(files[1]), "graph": None, "severity": "error", "path": None,
                      "line": 7, "column": 73, "message": "invalid JSON: Expecting value"}
    code, out, _ = run("validate", "--json", EX / "ensemble.yaml")
    assert code == 0
    assert json.loads(out) == {"valid": True, "errors": 0, "warnings": 0, "diagnostics": []}


# -- explain --------------------------------------------------------------------------

def test_explain_text_tree():
    code, out, err = run("explain", EX / "dog-cat.yaml")
    assert (code, err) == (0, "")
    assert out == """\
InferenceGraph dog-cat-breeds in namespace pets
root (Sequence)
|-- [0]  species:  service cat-dog-classifier
`-- [1]  breed:  node species-switch  data $response  predictions->instances
    `-- species-switch (Switch)
        |-- [0]  dog:  node dog-breeds  if instances.#(species=="dog")
        |   `-- dog-breeds (Ensemble)
        |       |-- [0]  resnet:  service dog-breed-resnet50  Hard
        |       `-- [1]  vit:  service dog-breed-vit  Soft
        `-- [1]  cat:  service cat-breed-classifier  if instances.#(species=="cat")
"""


def test_explain_weights_urls_and_bare_spec():
    code, out, _ = run("explain", "-", stdin=json.dumps({"nodes": {"root": {
        "routerType": "Splitter", "steps": [
            {"serviceUrl": "http://127.0.0.1:9001/v1/models/a:predict", "weight": 80},
            {"serviceName": "b", "weight": 20}]}}}))
    assert code == 0
    assert out.splitlines() == [
        "InferenceGraph (bare spec)",
        "root (Splitter)",
        "|-- [0]  url http://127.0.0.1:9001/v1/models/a:predict  weight 80",
        "`-- [1]  service b  weight 20",
    ]


def test_explain_invalid_graph_draws_cycle_unreachable_and_exits_1():
    code, out, err = run("explain", INVALID / "cycle.yaml")
    assert code == 1
    assert out.splitlines()[1:] == [
        "root (Sequence)",
        "|-- [0]  service classifier",
        "`-- [1]  node left",
        "    `-- left (Sequence)",
        "        `-- [0]  node root",
        "            `-- root (cycle: back to root)",
    ]
    assert err == "spec.nodes.left.steps[0].nodeName: error: cycle: root -> left -> root\n"
    code, out, err = run("explain", INVALID / "warn-unreachable.yaml")
    assert code == 0
    assert "orphan (Sequence)  [unreachable from root]" in out.splitlines()
    assert "warning" in err


def test_explain_mermaid():
    code, out, _ = run("explain", "--format", "mermaid", EX / "canary.yaml")
    assert code == 0
    assert out == """\
flowchart TD
    n0["root (Splitter)"]
    s0_0("churn-v1")
    s0_1("churn-v2")
    n0 -->|"stable 90%"| s0_0
    n0 -->|"canary 10%"| s0_1
"""


def test_explain_dot():
    code, out, _ = run("explain", "--format", "dot", EX / "sequence.yaml")
    assert code == 0
    assert out == """\
digraph "text-pipeline" {
    rankdir=TB;
    n0 [shape=box, label="root (Sequence)"];
    s0_0 [shape=ellipse, label="bert-tokenizer"];
    s0_1 [shape=ellipse, label="bert-sentiment"];
    n0 -> s0_0 [label="1. tokenize"];
    n0 -> s0_1 [label="2. sentiment Hard"];
}
"""


def test_explain_mermaid_escapes_quotes_and_links_nodes():
    code, out, _ = run("explain", "--format", "mermaid", EX / "dog-cat.yaml")
    assert code == 0
    assert '    n1 -->|"dog if instances.#(species==#quot;dog#quot;)"| n2' in out.splitlines()
    assert '    n0 -->|"2. breed"| n1' in out.splitlines()


def test_explain_malformed_and_missing():
    code, out, err = run("explain", INVALID / "malformed.yaml")
    assert (code, out) == (1, "")
    assert err.startswith(f"{INVALID / 'malformed.yaml'}:11:8: error: invalid YAML")
    code, out, err = run("explain", "no/such/graph.yaml")
    assert (code, out, err) == (1, "", "no/such/graph.yaml: error: no such file\n")


# -- the command line itself ----------------------------------------------------------

def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert "a command is required" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert main(["explain", "--format", "png", "x.yaml"]) == 2
    assert main(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ige 0.")


def test_subcommands_are_registered_for_extension():
    parser = build_parser()
    args = parser.parse_args(["validate", "a.yaml", "--json"])
    assert args.files == ["a.yaml"] and args.json and callable(args.handler)


def test_python_dash_m_engine_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(EX / "switch.yaml"),
         str(INVALID / "splitter-weight-sum.yaml"), str(INVALID / "malformed.json")],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{INVALID / 'splitter-weight-sum.yaml'}: spec.nodes.root.steps: error: InferenceGraph[canary] "
        "Node[root] splitter node: the sum of traffic weights for all routing targets should be 100",
        f"{INVALID / 'malformed.json'}:7:73: error: invalid JSON: Expecting value",
    ]
    assert proc.stderr == "3 file(s): 2 error(s), 0 warning(s)\n"
