"""The package's shape, checked from its source with ``ast`` (no import needed).

Rules (issue 9, ../shared/DESIGN.md):

(a) no ``lmmjax`` or relative import inside a function or class body: an
    import that hides in a function usually dodges a cycle; optional heavy
    third-party dependencies (matplotlib) may be imported late, and they are
    not lmmjax imports;
(b) no import cycle between modules, nor between packages;
(c) no ``_private`` name (or ``_private`` module) imported from another package;
(d) the pipeline runs one way: a stage never imports a later stage,
    formula < structure < objective < fitting < results < inference/simulate
    < diagnostics/powersim < the top floor (``lmmjax/__init__``,
    :mod:`lmmjax.methods`, the command line).

Only module-level imports make the graph, together with module-level
``lazy_module("lmmjax.x")`` names (:mod:`lmmjax.lazy`: imported on first use,
but a dependency all the same); imports under ``if TYPE_CHECKING:`` are
ignored everywhere.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lmmjax"
ROOT = "lmmjax"

# Stage of each top-level package or module (imports may only go to a stage <= its own).
STAGES = {
    # foundations, importable from anywhere
    "errors": 0, "memo": 0, "version": 0, "config": 0, "datasets": 0, "text": 0, "lazy": 0,
    "validate": 0, "progress": 0, "program_cache": 0,
    "blas_threads": 0,  # scipy's OpenBLAS thread count: set by config at import, held at one by the optimizers
    "heap": 0,  # hands freed heap memory back to the OS (glibc's malloc_trim) around large compiles
    "families": 0,  # GLM families (pure JAX functions): formula checks responses, objective uses them
    "formula": 1,
    "structure": 2,
    "objective": 3,
    "model": 3.5,  # Model: a structure with its weights, offset and cross-product values (objective)
    "fitting": 4,
    "results": 5,
    "lmer": 5.5,  # lmer/refit: formula → fit; inference refits by ML through it
    "glmer": 5.5,  # glmer: formula → GLMM fit
    "inference": 6, "simulate": 6,
    "diagnostics": 7, "powersim": 7,
    # the top floor
    ROOT: 8, "methods": 8, "__main__": 8, "demo": 8, "warmup": 8,
}

# Function-level lmmjax imports allowed, with the reason: {(file, function): reason}.
ALLOWED_LATE_IMPORTS: dict = {}

# Dynamic imports (importlib.import_module) allowed, with the reason: {file: reason}.
ALLOWED_DYNAMIC_IMPORTS = {
    "lmmjax/lazy.py": "the one deferred import: modules a fit does not need load on first use "
                      "(first-call latency, issue 9); its users are module-level lazy_module(...) "
                      "names, counted as import edges below",
}
LAZY_FACTORY = "lazy_module"

# Engine files the lead is rewriting for engine v2 (issue 9); their remaining
# violations go when engine v2 lands. Remove an entry once its test passes.
ENGINE_V2_PENDING = {"late_imports": {}, "private_names": {}}


# ---- reading the package ------------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(f): f for f in FILES}


def relpath(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """Absolute module named by ``from <...> import`` in ``module``."""
    if not node.level:
        return node.module or ""
    package = module if is_package(path) else module.rsplit(".", 1)[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(module: str, path: Path, node: ast.AST) -> list:
    """[(target module, imported name or None)] of one import statement, lmmjax targets only."""
    out = []
    if isinstance(node, ast.Import):
        out = [(a.name, None) for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = resolve(module, path, node)
        for a in node.names:
            sub = f"{base}.{a.name}"
            out.append((sub, None) if sub in MODULES else (base, a.name))
    return [(t, n) for t, n in out if t == ROOT or t.startswith(ROOT + ".")]


def module_level_imports(path: Path):
    """Import nodes executed when the module is imported (not in functions, classes, TYPE_CHECKING)."""
    def walk(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            elif is_type_checking(node):
                yield from walk(node.orelse)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    inner = getattr(node, field, None)
                    if isinstance(inner, list):
                        yield from walk(inner)

    yield from walk(parse(path).body)


def late_imports(path: Path):
    """(function or class name, import node) for every import inside a def or class body."""
    for top in ast.walk(parse(path)):
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for stmt in top.body:
                for node in ast.walk(stmt):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        yield top.name, node


def dynamic_imports(path: Path):
    """Calls of importlib.import_module / __import__ (a late import by another name)."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__"):
                yield node.lineno


def lazy_targets(path: Path) -> list:
    """Modules named by ``lazy_module("lmmjax.x")`` calls outside functions."""
    out = []

    def visit(node, in_function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if isinstance(node, ast.Call) and not in_function:
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name == LAZY_FACTORY and node.args and isinstance(node.args[0], ast.Constant):
                out.append((node.lineno, node.args[0].value))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(parse(path), False)
    return out


def lazy_calls_in_functions(path: Path) -> list:
    """``lazy_module(...)`` calls inside functions (a late import by another name)."""
    module_level = {line for line, _ in lazy_targets(path)}
    return [n.lineno for n in ast.walk(parse(path))
            if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == LAZY_FACTORY
            and n.lineno not in module_level]


def graph() -> dict:
    """Module → set of lmmjax modules it imports at module level (or names lazily)."""
    edges = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        for node in module_level_imports(path):
            for target, _ in imported(m, path, node):
                if target in MODULES and target != m:
                    edges[m].add(target)
        for _, target in lazy_targets(path):
            assert target in MODULES, f"{relpath(path)}: lazy_module({target!r}) names no module"
            if target != m:
                edges[m].add(target)
    return edges


def unit(module: str) -> str:
    """The top-level package or module a module belongs to (``inference``, ``lmer``, ``lmmjax``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def find_cycle(edges: dict):
    """One cycle as a list of nodes, or None (iterative DFS)."""
    state, parent = {}, {}
    for start in edges:
        if state.get(start):
            continue
        stack = [(start, iter(sorted(edges[start])))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                cycle = [nxt]
                for n, _ in reversed(stack):
                    cycle.append(n)
                    if n == nxt:
                        break
                return cycle[::-1]
            if not state.get(nxt):
                state[nxt] = 1
                parent[nxt] = node
                stack.append((nxt, iter(sorted(edges.get(nxt, ())))))
    return None


def pending(rule: str, path: Path):
    note = ENGINE_V2_PENDING[rule].get(relpath(path))
    return [pytest.mark.xfail(reason=f"engine v2 pending: {note}", strict=False)] if note else []


def per_file(rule: str):
    return [pytest.param(f, id=relpath(f), marks=pending(rule, f)) for f in FILES]


# ---- (a) no late lmmjax imports -----------------------------------------------------------------
@pytest.mark.parametrize("path", per_file("late_imports"))
def test_no_function_level_lmmjax_imports(path):
    module = module_name(path)
    bad = []
    for where, node in late_imports(path):
        relative = isinstance(node, ast.ImportFrom) and node.level > 0
        if (relative or imported(module, path, node)) and (relpath(path), where) not in ALLOWED_LATE_IMPORTS:
            bad.append(f"{relpath(path)}:{node.lineno} in {where}")
    if relpath(path) not in ALLOWED_DYNAMIC_IMPORTS:
        bad += [f"{relpath(path)}:{line} dynamic import" for line in dynamic_imports(path)]
    bad += [f"{relpath(path)}:{line} lazy_module() inside a function" for line in lazy_calls_in_functions(path)]
    assert not bad, "lmmjax imports inside functions (move them to the top of the module):\n" + "\n".join(bad)


def test_allowlist_entries_exist():
    """Every allowed late import still exists (stale entries would hide new ones)."""
    for (file, where), reason in ALLOWED_LATE_IMPORTS.items():
        assert reason, f"{file}:{where} needs a reason"
        path = PACKAGE.parent / file
        assert any(name == where for name, _ in late_imports(path)), f"stale allowlist entry {file}:{where}"


# ---- (b) no cycles ----------------------------------------------------------------------------
def test_no_import_cycle_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    edges = {}
    for m, targets in graph().items():
        edges.setdefault(unit(m), set()).update(unit(t) for t in targets if unit(t) != unit(m))
    cycle = find_cycle(edges)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


# ---- (c) no private names across packages -----------------------------------------------------
def home_package(module: str, path: Path) -> str:
    return module if is_package(path) else module.rsplit(".", 1)[0]


@pytest.mark.parametrize("path", per_file("private_names"))
def test_no_private_name_imported_across_packages(path):
    module = module_name(path)
    here = home_package(module, path)
    bad = []
    nodes = list(module_level_imports(path)) + [n for _, n in late_imports(path)]
    for node in nodes:
        for target, name in imported(module, path, node):
            target_path = MODULES.get(target)
            there = home_package(target, target_path) if target_path else target
            if there == here:
                continue
            private_parts = [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private_parts or (name and name.startswith("_") and not name.startswith("__")):
                bad.append(f"{relpath(path)}:{node.lineno} imports {target}{'.' + name if name else ''}")
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


# ---- (d) the pipeline runs one way ------------------------------------------------------------
def test_every_module_has_a_stage():
    missing = sorted({unit(m) for m in MODULES} - set(STAGES))
    assert not missing, f"give these modules/packages a stage in STAGES: {missing}"


@pytest.mark.parametrize("path", [pytest.param(f, id=relpath(f)) for f in FILES])
def test_no_import_from_a_later_stage(path):
    module = module_name(path)
    mine = STAGES[unit(module)]
    bad = []
    for target in graph()[module]:
        if STAGES[unit(target)] > mine:
            bad.append(f"{module} (stage {mine}) imports {target} (stage {STAGES[unit(target)]})")
    assert not bad, "\n".join(bad)


# ---- the rules themselves ---------------------------------------------------------------------
def test_rules_see_a_known_edge_and_detect_a_cycle():
    """The graph has edges we know are there (one plain, one lazy), and the cycle finder
    finds a planted cycle."""
    assert "lmmjax.results.fit" in graph()["lmmjax.lmer"]
    assert "lmmjax.inference" in graph()["lmmjax.methods"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_results_import_nothing_downstream():
    """The fit record (results/) reaches no inference, simulation, diagnostics or lmer code."""
    later = {u for u, s in STAGES.items() if s > STAGES["results"]}
    for m, targets in graph().items():
        if unit(m) == "results":
            assert not {unit(t) for t in targets} & later, m
