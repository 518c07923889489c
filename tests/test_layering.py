"""dlakit's structure, checked from its source: one op knowledge base, and no import cycle between subpackages.

Op facts live in ``data/ops.toml`` (read through :func:`dlakit.data.opdata.op_data`); a module-level table of op names
elsewhere is a second copy that a correction would miss. ``check/`` (the placement rules themselves) and
``rewrite/rules/`` (each rewrite names the ops it anchors on) are the two places allowed to list ops.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dlakit.data.opdata import CONFIDENCE, op_data, read

SRC = Path(__file__).resolve().parents[1] / "src" / "dlakit"
ALLOWED = ("check/", "rewrite/rules/")
MIN_OPS = 4


def _op_names() -> set[str]:
    data = op_data()
    names = set(data.ops) | set(data.selection_inputs) | set(data.modes)
    for members in data.onnx.values():
        names |= members
    return names


def _literal_strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Dict):
        elements = [k for k in node.keys if k is not None] + list(node.values)
    elif isinstance(node, ast.Set | ast.Tuple | ast.List):
        elements = list(node.elts)
    else:
        return []
    return [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def op_tables() -> list[str]:
    """``file:line (n ops)`` for each module-level literal holding at least MIN_OPS op names, outside ALLOWED."""
    names = _op_names()
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for statement in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(statement, ast.Assign | ast.AnnAssign | ast.AugAssign):
                continue
            for node in ast.walk(statement):
                ops = [s for s in _literal_strings(node) if s in names]
                if len(ops) >= MIN_OPS:
                    found.append(f"{rel}:{statement.lineno} ({len(ops)} ops: {', '.join(ops[:4])}...)")
    return found


def test_no_module_level_op_table_outside_check_and_rewrite_rules():
    tables = op_tables()
    assert not tables, "op tables outside data/ops.toml (move them into the op data):\n" + "\n".join(tables)


def test_the_scan_finds_a_table_when_there_is_one():
    tree = ast.parse('TABLE = frozenset({"Conv", "Relu", "Add", "MaxPool"})\nSMALL = ("Conv", "Relu")\n')
    hits = [n for s in tree.body for n in ast.walk(s) if len([x for x in _literal_strings(n) if x in _op_names()]) >= 4]
    assert len(hits) == 1


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    """The layering unit of a dlakit module: its subpackage, or the top-level module itself (``dlakit.analysis``)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """unit → {imported unit: [where]} for every ``import`` / ``from ... import`` of dlakit, at module or function
    level (a lazy import is a dependency too)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        module = _module(path)
        source = _unit(module)
        if source is None:
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [name] + [f"{name}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                unit = _unit(target) if target.startswith("dlakit.") else None
                exists = unit is not None and ((SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file())
                if exists and unit != source:
                    graph.setdefault(source, {}).setdefault(unit, []).append(f"{module}:{node.lineno}")
    return graph


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components with more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for vertex in sorted(graph):
        if vertex not in index:
            visit(vertex)
    return components


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    cycles = strongly_connected(graph)
    detail = [f"{sorted(c)}: " + "; ".join(f"{a} -> {b} ({graph[a][b][0]})" for a in c for b in graph[a] if b in c)
              for c in cycles]
    assert not cycles, "import cycles between dlakit's subpackages:\n" + "\n".join(detail)


def test_tarjan_finds_a_cycle_and_ignores_a_chain():
    assert strongly_connected({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b": []}, "b": {"c": []}}) == []


def test_the_import_graph_sees_lazy_imports():
    # check asks the rewrite rules whether a "fixable" verdict holds, inside a function
    assert "rewrite" in import_graph()["check"]


def _rewrite_ids() -> set[str]:
    from dlakit.rewrite import PASS_IDS, RULES

    return {*RULES, *PASS_IDS}


def test_every_fix_named_by_the_op_and_rule_data_is_a_rewrite():
    ids = _rewrite_ids()
    named = {f"ops.toml {op}": info.fix for op, info in op_data().ops.items() if info.fix}
    named |= {f"rules.toml {name}": entry["fix"] for name, entry in read("rules.toml")["rules"].items()
              if entry.get("fix")}
    unknown = {where: fix for where, fix in named.items() if fix not in ids}
    assert not unknown, unknown


def test_every_fix_a_check_rule_function_names_is_a_rewrite():
    ids = _rewrite_ids()
    named = []
    for path in sorted((SRC / "check" / "rules").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "fix" and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                named.append((f"{path.name}:{node.value.lineno}", node.value.value))
    assert named, "the scan found no fix= keyword at all"
    # fix="" overrides the rule's default fix with none
    assert [(where, fix) for where, fix in named if fix and fix not in ids] == []


def test_rules_name_only_layers_of_the_op_data():
    layers = {info.layer for info in op_data().ops.values()} | {"*"}
    for name, entry in read("rules.toml")["rules"].items():
        assert set(entry["layers"]) <= layers, name


def test_one_confidence_vocabulary_for_every_data_file():
    seen = {e["confidence"] for e in read("rules.toml")["rules"].values()}

    def walk(value):
        if isinstance(value, dict):
            if "confidence" in value:
                seen.add(value["confidence"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(read("perf.toml"))
    walk(read("targets.toml"))
    assert seen <= set(CONFIDENCE)


@pytest.mark.parametrize("key, value", [("perf", "gpu"), ("int8", "int4"), ("equal_scale", "all"), ("sdp", "x")])
def test_the_op_data_refuses_an_unknown_value(key, value):
    from dlakit.data.opdata import _op

    with pytest.raises(ValueError, match=f"ops.toml: Foo: {key}"):
        _op("Foo", {"layer": "unary", key: value})


def test_the_op_data_refuses_an_unknown_key_and_an_unknown_layer():
    from dlakit.data.opdata import _op

    with pytest.raises(ValueError, match="unknown key"):
        _op("Foo", {"layer": "unary", "units": "sdp"})
    with pytest.raises(ValueError, match="layer"):
        _op("Foo", {"layer": "magic"})


def test_one_sparsity_channel_limit():
    from dlakit.perf.hardware import load_perf_data
    from dlakit.sparsity.eligibility import min_channels

    assert min_channels() == load_perf_data().spec(2).sparse_min_channels == 64
