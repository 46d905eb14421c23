"""The layout keeps the data flow readable: science packages know nothing of the service shell, the workers
nothing of the API, every parameter has one definition, and the README's layout table lists the packages."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIENCE = ("schemas", "md", "sampling", "selection", "pcc_gcmc", "labelling", "mlip")
SHELL = ("core", "workers", "app")


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of ``package`` imports (also inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_science_packages_import_no_service_shell_and_workers_no_app():
    offenders = [(module, sorted(names & set(SHELL))) for package in SCIENCE
                 for module, names in _imports(package).items() if names & set(SHELL)]
    assert offenders == []
    offenders = [(module, "app") for package in ("core", "workers")
                 for module, names in _imports(package).items() if "app" in names]
    assert offenders == []


def _literal_defaults(path: Path, names: set[str]) -> list[str]:
    """Where ``names`` get a literal default: ``name: T = 2.0``, ``name = Field(2.0, ...)``, ``def f(name=2.0)``."""
    def literal(value: ast.expr | None) -> bool:
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field" and value.args:
            value = value.args[0]
        return isinstance(value, ast.Constant) and isinstance(value.value, (int, float))

    sites = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        annotated = isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) in names
        assigned = isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets)
        if (annotated or assigned) and literal(node.value):
            sites.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
            pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
            sites += [f"{path.relative_to(ROOT)}:{node.lineno}" for a, d in pairs if a.arg in names and literal(d)]
    return sites


def test_the_extrapolation_grade_thresholds_have_one_definition():
    """The defaults of gamma_select (2) and gamma_break (10) are written once, in the campaign schema."""
    sites = [site for package in SCIENCE + SHELL for path in sorted((ROOT / package).rglob("*.py"))
             for site in _literal_defaults(path, {"gamma_select", "gamma_break"})]
    assert len(sites) == 2 and {site.split(":")[0] for site in sites} == {"schemas/campaign.py"}, sites


def test_the_readme_layout_table_lists_every_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    installed = {name.rstrip("*") for name in packages["include"]}
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = {match.group(1) for match in re.finditer(r"^\| `([a-z_]+)/` \|", table, re.M)}
    assert installed <= rows, installed - rows
    assert all((ROOT / row).is_dir() for row in rows), [row for row in rows if not (ROOT / row).is_dir()]
    for line in table.splitlines()[2:]:  # each row says which stage of the paper the package holds
        assert len(line.split("|")) == 5 and line.split("|")[2].strip(), line


# SQLAlchemy names that build a statement or a SQL expression: only core/ imports them.
QUERY_BUILDERS = {
    "select", "update", "delete", "insert", "text", "func", "case", "and_", "or_", "not_", "exists", "union",
    "union_all", "literal", "literal_column", "bindparam", "tuple_", "values", "column", "table", "lateral",
}
# Session / Connection methods that run a statement, on any receiver (no other object of this code base has them)
RUNS_SQL = {"execute", "scalars", "scalar", "scalar_one", "scalar_one_or_none", "exec_driver_sql"}
# Session methods that load rows by class: a call with a model of core.models as its first argument
LOADS_BY_CLASS = {"get", "get_one", "query"}


def _model_names() -> set[str]:
    tree = ast.parse((ROOT / "core" / "models.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def _query_sites(path: Path, models: set[str]) -> list[str]:
    """Where the module at ``path`` builds or runs a query itself (see the test's docstring)."""
    tree = ast.parse(path.read_text(), str(path))
    where = str(path.relative_to(ROOT))
    sites = []
    sqlalchemy_aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "sqlalchemy":
            sites += [f"{where}:{node.lineno} imports {alias.name} from {node.module}"
                      for alias in node.names if alias.name in QUERY_BUILDERS | {"*"}]
        elif isinstance(node, ast.Import):
            sqlalchemy_aliases |= {(alias.asname or alias.name).split(".")[0] for alias in node.names
                                   if alias.name.split(".")[0] == "sqlalchemy"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in QUERY_BUILDERS and isinstance(node.value, ast.Name)
                and node.value.id in sqlalchemy_aliases):
            sites.append(f"{where}:{node.lineno} {node.value.id}.{node.attr}")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        first = node.args[0] if node.args else None
        if method in RUNS_SQL or (method in LOADS_BY_CLASS and isinstance(first, ast.Name) and first.id in models):
            sites.append(f"{where}:{node.lineno} .{method}(...)")
    return sites


def test_only_core_builds_queries():
    """Database access goes through core.access: only core/ builds or runs a query.

    Outside core/ (tests/, benchmarks/ and the alembic/ migrations are not packages and are not scanned), no
    module imports a statement or SQL-expression builder from SQLAlchemy (``select``, ``update``, ``delete``,
    ``insert``, ``text``, ``func``, ``case``, ``and_``, ``or_``, ... see QUERY_BUILDERS) or reaches one as
    ``sqlalchemy.<name>``; calls a method that runs a statement (``execute``, ``scalars``, ``scalar``,
    ``scalar_one``, ... see RUNS_SQL) on anything; or loads rows by class (``session.get(Model, id)``,
    ``get_one``, ``query``). What stays allowed in callers: the unit of work on rows they were given
    (``session.add``, ``flush``, ``commit``, ``rollback``, ``begin_nested``, ``expire``, attribute changes),
    ``session_scope`` / ``session_factory`` from core.session, SQLAlchemy's exceptions and types (``Session``,
    ``Row``, ``IntegrityError``).
    """
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    scanned = sorted({name.rstrip("*") for name in packages["include"]} - {"core"})
    models = _model_names()
    assert {"Campaign", "WorkItem", "Structure", "Label", "Artifact"} <= models
    offenders = [site for package in scanned for path in sorted((ROOT / package).rglob("*.py"))
                 for site in _query_sites(path, models)]
    assert offenders == []
    # the rule sees what it is meant to see: core.access itself is full of such sites
    assert _query_sites(ROOT / "core" / "access" / "work.py", models)
    assert any(".get(" in site for site in _query_sites(ROOT / "core" / "access" / "campaigns.py", models))
