"""The package's layers, checked: the spec layer (engine/spec/) stands on its own,
and no engine module imports, directly or through others, one that imports it back.

The spec layer reads, validates and renders graphs; the runtime (engine._core,
backends, compiler, plan, servers) sits above it. Validation diagnoses step conditions
with the GJSON library (engine.gjson over engine._gjson, a standalone extension that
is not the runtime), so those two are the only modules outside the spec the layer may
import besides engine.errors.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import engine
from engine.compiler import compile_graph
from engine.spec import reachable_nodes
from engine.spec.render import text_tree

ENGINE = Path(engine.__file__).resolve().parent

# What importing and using the spec layer must not load
RUNTIME = ("engine._core", "engine.backends", "engine.compiler", "engine.plan", "engine.server")
# What engine/spec/* may import besides itself
SPEC_MAY_IMPORT = ("engine.errors", "engine.gjson", "engine._gjson")
# Import circles another change removes; each entry is the set of modules in one circle
ALLOWED_CIRCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, tuple[Path | None, bool]]:
    """Module name -> (file, is a package) for every engine/**/*.py; the compiled
    modules (known by their stubs) have no file to read."""
    found: dict[str, tuple[Path | None, bool]] = {
        _module_name(p): (None, False) for p in sorted(ENGINE.rglob("*.pyi"))}
    for path in sorted(ENGINE.rglob("*.py")):
        found[_module_name(path)] = (path, path.name == "__init__.py")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool, sources) -> set[str]:
    """The engine modules ``module`` imports anywhere in its body (module level,
    functions, classes; ``importlib.import_module`` with a literal name too), each name
    resolved to the module it denotes: ``from . import _core`` is engine._core,
    ``from . import load`` is engine. Importing a module runs its packages' ``__init__``
    first, so those count too (but not the packages ``module`` itself is in). Imports
    under ``if TYPE_CHECKING:`` are left out: they never run."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def absolute(name: str | None, level: int) -> str:
        if not level:
            return name or ""
        base = package.split(".")
        base = base[:len(base) - (level - 1)]
        return ".".join(base + ([name] if name else []))

    def add(name: str) -> None:
        if name not in sources:
            return
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:end])
            if ancestor in sources and not (module + ".").startswith(ancestor + "."):
                found.add(ancestor)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module, node.level)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            name = node.args[0].value
            level = len(name) - len(name.lstrip("."))
            add(absolute(name.lstrip(".") or None, level))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """engine module -> the engine modules it imports."""
    sources = _sources()
    return {module: _imported_names(ast.parse(path.read_text(), str(path)), module, is_package,
                                    sources) if path is not None else set()
            for module, (path, is_package) in sources.items()}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_circles_among_engine_modules():
    found = [sorted(c) for c in circles(import_graph()) if c not in ALLOWED_CIRCLES]
    assert found == []


def test_spec_imports_only_spec_errors_and_gjson():
    def in_spec(name: str) -> bool:
        return name == "engine.spec" or name.startswith("engine.spec.")

    outside = {module: sorted(t for t in targets if not in_spec(t) and t not in SPEC_MAY_IMPORT)
               for module, targets in import_graph().items() if in_spec(module)}
    assert {m: t for m, t in outside.items() if t} == {}


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    tree = ast.parse("def f():\n    from ..backends import url_problem\n"
                     "    from .. import _core\n    import engine.plan\n"
                     "if TYPE_CHECKING:\n    from ..compiler import Policy\n")
    sources = {m: None for m in ("engine", "engine._core", "engine.backends", "engine.compiler",
                                 "engine.plan", "engine.spec", "engine.spec.rules")}
    names = _imported_names(tree, "engine.spec.rules", False, sources)
    assert names == {"engine.backends", "engine._core", "engine.plan"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


PROBE = r"""
import json, pkgutil, sys
import engine.spec
for info in pkgutil.walk_packages(engine.spec.__path__, "engine.spec."):
    __import__(info.name)
graph = engine.spec.load({"nodes": {"root": {"routerType": "Switch", "steps": [
    {"serviceUrl": "grpc://model:9000/m", "condition": "instances.#(id==1)"},
    {"serviceUrl": "ftp://model/m", "condition": "a.b"},
    {"nodeName": "next", "condition": "x"}]},
    "next": {"steps": [{"serviceUrl": "http://model/v1/models/m:predict"}]}}})
graph.diagnose()
from engine.spec.render import dot, mermaid, text_tree
text_tree(graph), mermaid(graph), dot(graph)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("engine"))))
"""


def test_the_spec_layer_loads_validates_and_renders_without_the_runtime():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m in RUNTIME or m.startswith(tuple(r + "." for r in RUNTIME))] == []
    assert "engine.spec.urls" in loaded  # the URL and condition checks did run


GRAPH = {"nodes": {
    "root": {"routerType": "Sequence", "steps": [
        {"nodeName": "a"}, {"nodeName": "b"}, {"serviceUrl": "http://m/v1/models/m:predict"}]},
    "b": {"routerType": "Sequence", "steps": [{"nodeName": "c"}, {"nodeName": "root"}]},
    "a": {"routerType": "Sequence", "steps": [{"nodeName": "c"}]},
    "c": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://m/v1/models/c:predict"}]},
    "orphan": {"routerType": "Sequence", "steps": [{"nodeName": "c"}]},
}}


def test_one_reachability_for_validation_rendering_and_compiling():
    graph = engine.load(GRAPH)
    assert reachable_nodes(graph.nodes) == ["root", "a", "b", "c"]
    acyclic = engine.load({"nodes": {**GRAPH["nodes"], "b": {"routerType": "Sequence",
                                                               "steps": [{"nodeName": "c"}]}}})
    plan = compile_graph(acyclic)
    assert [n.name for n in plan.compiled.nodes] == ["root", "a", "b", "c"]
    unreachable = [d.path for d in acyclic.diagnose() if "not reachable" in d.message]
    assert unreachable == ["spec.nodes.orphan"]
    assert "orphan (Sequence)  [unreachable from root]" in text_tree(acyclic)
    assert reachable_nodes({}) == []


def test_an_empty_node_name_leads_nowhere_for_validation_rendering_and_compiling():
    # KServe's router follows nodeName only when it is not empty; a node named "" is
    # then never run, whatever a step's empty nodeName seems to say
    graph = engine.load({"nodes": {
        "root": {"routerType": "Sequence", "steps": [
            {"nodeName": "", "serviceUrl": "http://m/v1/models/m:predict"}]},
        "": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://m/v1/models/e:predict"}]}}})
    assert reachable_nodes(graph.nodes) == ["root"]
    assert [n.name for n in compile_graph(graph).compiled.nodes] == ["root"]
    assert [d.path for d in graph.diagnose() if "not reachable" in d.message] == ["spec.nodes."]
    assert " (Sequence)  [unreachable from root]" in text_tree(graph)


# ---- ext/: the include order of engine._core ------------------------------------------

EXT = ENGINE.parent / "ext"
_DEFINES = re.compile(r"^(?:cdef (?:inline )?(?:class )?(?:[\w\*]+ )*?|cpdef (?:[\w\*]+ )*?|def |class |async def )"
                      r"(\w+)\s*[\(:=]", re.M)
_GLOBALS = re.compile(r"^cdef (?:object|bytes|str|int|bint|list|dict|set|tuple|double|type|frozenset|"
                      r"Py_ssize_t|Path|uint64_t|long long) (\w+)\s*=", re.M)
# names a file may use before the file that defines them: forward-declared in the
# .pxd (the server's and client's connection types, which the shared body reader
# points back to), and a local variable that shares a later function's name
FORWARD = {("http/common.pyx", "_HttpServerProtocol"), ("http/common.pyx", "_ClientConnection"),
           ("http/server.pyx", "answer")}


def _code(text: str) -> str:
    return re.sub(r"#.*", "", re.sub(r'"""[\s\S]*?"""', "", text))


def test_no_ext_file_uses_what_a_later_one_defines():
    order = [line.split('"')[1] for line in (EXT / "_core.pyx").read_text().splitlines()
             if line.startswith("include ")]
    defined = {f: set(_DEFINES.findall(t)) | set(_GLOBALS.findall(t))
               for f in order for t in [(EXT / f).read_text()]}
    found = []
    for i, f in enumerate(order):
        code = _code((EXT / f).read_text())
        for later in order[i + 1:]:
            for name in defined[later] - defined[f]:
                if len(name) > 3 and (f, name) not in FORWARD and \
                        re.search(r"(?<![\w.])%s(?!\w)" % re.escape(name), code):
                    found.append(f"{f} uses {name} from {later}")
    assert found == []


def test_every_included_file_has_its_declarations_beside_it_or_none():
    pxd = (EXT / "engine" / "_core.pxd").read_text()
    included = [line.split('"')[1] for line in pxd.splitlines() if line.startswith("include ")]
    for name in included:
        assert (EXT / name).exists(), name
        if name.startswith("base/hex"):
            continue        # shared by both modules, no .pyx of its own
        assert (EXT / name).with_suffix(".pyx").exists(), f"{name} declares no file"
