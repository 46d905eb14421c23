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
