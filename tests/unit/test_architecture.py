"""The boundaries the style guide promises, read from the code: no import circles anywhere in the
repository (`rag/`, `bench/`, `eval/`, `studies/`, `tests/`), backend libraries only inside
`rag/stores`, typer and rich only in the CLI, and a query path that loads neither torch nor the
cleaner."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every folder of Python the repository holds; bench/work is the benchmarks' scratch space
# (an older checkout, a native build's venv), not the repository's code.
REPOSITORY = ("rag", "bench", "eval", "studies", "tests")
SCRATCH = ROOT / "bench" / "work"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(folders: tuple[str, ...] = ("rag",)) -> dict[str, Path]:
    return {
        _module_name(p): p
        for folder in folders
        for p in (ROOT / folder).rglob("*.py")
        if not p.is_relative_to(SCRATCH)
    }


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module this one imports, at the top or inside a function ("from x import y"
    counts as importing x.y when x.y is a module, and as importing x otherwise)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            # `from pkg import module` names the module; the package's own names otherwise.
            found.update(subs if len(subs) == len(node.names) else {base, *subs})
    return found


def import_graph(folders: tuple[str, ...] = ("rag",)) -> dict[str, set[str]]:
    mods = _modules(folders)
    return {m: {i for i in _imports(p, m, set(mods)) if i in mods and i != m} for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle_and_only_that():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_repository():
    graph = import_graph(REPOSITORY)
    assert "rag.stores.faiss.store" in graph and "rag.stores.base" in graph["rag.stores.faiss.store"]
    assert "bench.common" in graph["bench.stores"] and "bench.common" in graph["bench.run"]
    assert "studies.signal_study" in graph["studies.ql_abstention"]
    assert cycles(graph) == []


def _third_party(path: Path) -> set[str]:
    return {i.split(".")[0] for i in _imports(path, _module_name(path), set()) if not i.startswith("rag")}


def test_backend_libraries_are_imported_only_by_the_stores():
    for name, path in _modules().items():
        if name.startswith("rag.stores"):
            continue
        assert not _third_party(path) & {"sqlite3", "faiss", "pymilvus", "milvus_lite"}, name


def test_only_the_cli_imports_typer_or_rich():
    for name, path in _modules().items():
        if name != "rag.cli" and not name.startswith("rag.cli."):
            assert not _third_party(path) & {"typer", "rich"}, name


ABOVE_THE_STORES = ("retrieve", "answer", "abstain", "followup", "evaluation")


def test_retrieve_answer_and_evaluation_never_name_a_concrete_store():
    concrete = ("rag.stores.faiss", "rag.stores.milvus")
    for name, path in _modules().items():
        if name.split(".")[1:2] and name.split(".")[1] in ABOVE_THE_STORES:
            assert not {i for i in _imports(path, name, set()) if i.startswith(concrete)}, name
