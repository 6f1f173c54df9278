"""Dependencies run one way (issue 14; docs/architecture.md): the package-level import graph of
``shared/labelwise``, read with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks count)."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "shared" / "labelwise"

#: The node of ``labelwise/__init__.py`` (it holds only ``__version__``).
ROOT = "labelwise"

#: Package-level cycles not yet removed, as sorted tuples of the packages in one cycle. Known debt:
#: add nothing here without naming it in docs/architecture.md.
KNOWN_CYCLES: set[tuple[str, ...]] = set()

#: What the domain (``classify``, ``learning``) must never import: the interface, the services it
#: is wired into, the composition root, the entry points, upload jobs, the endpoint adapter and the
#: storage adapters.
DOMAIN = ("classify", "learning")
FORBIDDEN_FOR_DOMAIN = ("api", "services", "runtime", "server", "cli", "uploads", "endpoint")
#: The one storage module the domain may use (ports and record types).
STORAGE_PORTS = "labelwise.storage.ports"

#: The Lambda entry points (template.yaml handlers) and the packages their artifacts leave out
#: (functions/function.mk): nothing the entries reach may import them.
LAMBDA_ENTRIES = {
    "classify_app": REPO / "functions" / "classify" / "app.py",
    "train_app": REPO / "functions" / "train" / "app.py",
    "uploads": REPO / "functions" / "classify" / "uploads.py",
}
NOT_IN_LAMBDA = ("evaluation", "modelbuild")
#: Base modules every package may import; they import no other labelwise module.
BASE_MODULES = ("settings", "errors", "request_context", "numerics")
#: What ``learning`` (pure numpy) may import of labelwise: the numeric base module (and the root).
LEARNING_MAY_IMPORT = {ROOT, "numerics"}

#: The modules that may import boto3 / botocore: the AWS adapters.
AWS_ADAPTERS = {
    "labelwise.storage.aws",  # DynamoDB + S3 stores
    "labelwise.storage.aws_quota",  # DynamoDB rate limiter
    "labelwise.uploads.aws",  # S3 upload jobs
    "labelwise.endpoint.client",  # SageMaker runtime transport
    "labelwise.embedding.s3_source",  # s3:// model sources (a configured CLIP model)
}


#: The interface, the command line and what they are handed: they use adapters through ports, never
#: build one.
INTERFACE = ("api", "server", "services", "uploads", "cli")
#: Adapters (and their factories) that only the composition root, ``runtime``, builds.
ADAPTERS = (
    "labelwise.endpoint",
    "labelwise.images",
    "labelwise.embedding.clip",
    "labelwise.embedding.image_factory",
    "labelwise.embedding.onnx_embedder",
    "labelwise.storage.aws",
    "labelwise.storage.aws_quota",
    "labelwise.storage.local",
    "labelwise.uploads.aws",
)
#: Adapter factories matched exactly (``labelwise.storage.ports`` stays open to all): ``open_stores``.
ADAPTER_FACTORIES = ("labelwise.storage",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = SRC.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from m import x`` counts x when x is a module).
    ``module``: its dotted name, for a file outside ``shared/`` (a Lambda entry)."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{a.name}" for a in node.names if _is_module(f"{source}.{a.name}"))
    return found


def _modules() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _package(module: str) -> str:
    """The top-level package or module under labelwise (``labelwise.api.app`` -> ``api``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in _modules().items():
        graph[_package(module)]
        for target in imported:
            inside = target == ROOT or target.startswith(ROOT + ".")
            if inside and _package(target) != _package(module):
                graph[_package(module)].add(_package(target))
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one package (Tarjan), as sorted tuples."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.add(tuple(sorted(component)))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_package() -> None:
    # Given the package graph of shared/labelwise
    graph = package_graph()
    # Then it knows the packages this test guards, and a known edge (imports inside functions count)
    for package in ("api", "classify", "learning", "embedding", "storage", "runtime", "uploads", "cli"):
        assert package in graph, package
    assert "endpoint" in graph["runtime"]
    assert "uploads" in graph["runtime"]  # imported inside build_upload_jobs only


def test_cycle_detection_finds_a_cycle() -> None:
    # Given a graph with a -> b -> c -> a and an acyclic d -> a
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    # Then exactly the cycle is reported
    assert cycles(graph) == {("a", "b", "c")}


def test_packages_have_no_import_cycles() -> None:
    # Given the package-level import graph
    graph = package_graph()
    # When its cycles are computed
    found = cycles(graph)
    # Then there are none besides the listed known debt, and the debt list holds no fixed cycle
    assert found - KNOWN_CYCLES == set(), (
        f"new import cycle(s) between packages: {sorted(found - KNOWN_CYCLES)}"
    )
    assert KNOWN_CYCLES - found == set(), f"remove fixed cycles from KNOWN_CYCLES: {KNOWN_CYCLES - found}"


def test_domain_imports_no_interface_runtime_or_adapter() -> None:
    # Given every module of classify/ and learning/
    offending = []
    for module, imported in _modules().items():
        if _package(module) not in DOMAIN:
            continue
        for target in sorted(imported):
            if not target.startswith(ROOT + "."):
                continue
            # When it imports the interface, the composition root, an entry point or an adapter
            forbidden = _package(target) in FORBIDDEN_FOR_DOMAIN
            storage_adapter = _package(target) == "storage" and target != STORAGE_PORTS
            if forbidden or storage_adapter:
                offending.append(f"{module} -> {target}")
    # Then there is no such import
    assert offending == []


def test_embedding_and_request_context_stay_low() -> None:
    # Given the package graph
    graph = package_graph()
    # Then embedding records request state without knowing telemetry, the endpoint or the API
    assert graph["embedding"] & {"telemetry", "endpoint", "api", "runtime", "classify", "quota"} == set()
    # And request_context, which every layer may import, imports no labelwise module
    assert graph.get("request_context", set()) == set()


def test_base_modules_stay_low_and_learning_imports_only_numerics() -> None:
    # Given the package graph
    graph = package_graph()
    # Then the base modules (numerics among them), which every package may import, import no
    # labelwise module
    for base in BASE_MODULES:
        assert graph.get(base, set()) == set(), base
    # And the online learners import nothing of labelwise but numerics
    assert graph["learning"] <= LEARNING_MAY_IMPORT


def test_progress_bar_is_a_leaf_without_dependencies() -> None:
    # Given the progress module the CLI draws its bars with
    imported = _modules()["labelwise.progress"]
    # Then it imports no labelwise module and nothing outside the standard library
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


def test_boto3_only_in_aws_adapters() -> None:
    # Given every module's imports
    users = {
        module
        for module, imported in _modules().items()
        if any(t.split(".")[0] in ("boto3", "botocore") for t in imported)
    }
    # Then only the listed AWS adapters import boto3/botocore, and each listed one still does
    assert users == AWS_ADAPTERS


def test_only_the_composition_root_builds_adapters() -> None:
    # Given every module of the interface, the command line and the services they are handed (the
    # AWS adapters aside)
    offending = []
    for module, imported in _modules().items():
        if _package(module) not in INTERFACE or module in AWS_ADAPTERS:
            continue
        # When it imports an adapter or an adapter factory
        for target in sorted(imported):
            if target in ADAPTER_FACTORIES or any(
                target == a or target.startswith(a + ".") for a in ADAPTERS
            ):
                offending.append(f"{module} -> {target}")
    # Then there is no such import: runtime builds them
    assert offending == []


def reachable_from(entry: Path, module: str) -> set[str]:
    """The labelwise modules an import of ``entry`` can execute: its imports, theirs, and so on, with
    the packages above each (importing ``labelwise.api.app`` runs ``labelwise/api/__init__.py``)."""
    modules = _modules()
    seen: set[str] = set()
    todo = [t for t in _imports(entry, module) if t == ROOT or t.startswith(ROOT + ".")]
    while todo:
        target = todo.pop()
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in modules and name not in seen:
                seen.add(name)
                todo.extend(modules[name])
    return seen


def test_reachability_follows_imports_inside_packages() -> None:
    # Given the classify Lambda entry
    reached = reachable_from(LAMBDA_ENTRIES["classify_app"], "classify_app")
    # Then it reaches its own import, the packages above it and what they import in turn
    assert {"labelwise", "labelwise.api", "labelwise.api.lambda_entry", "labelwise.classify"} <= reached


def test_lambda_code_never_imports_dev_or_build_time_packages() -> None:
    # Given every Lambda entry point
    offending = {}
    for module, entry in LAMBDA_ENTRIES.items():
        # When the labelwise modules it can reach are collected
        reached = reachable_from(entry, module)
        # Then none is in a package its artifact leaves out (evaluation/, modelbuild/)
        offending[module] = sorted(m for m in reached if _package(m) in NOT_IN_LAMBDA)
    assert offending == {m: [] for m in LAMBDA_ENTRIES}
