"""The `defect-genome` command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from core.settings import get_settings
from schemas import FieldError, SelectionParams, SpecError, load_spec_text, parse_spec
from schemas.reconstruction import GCMCParams

if TYPE_CHECKING:  # imported where used: the CLI starts without the database and science packages
    from pydantic import BaseModel
    from sqlalchemy.orm import Session

    from app.exports import ExportFilters
    from core.models import Campaign
    from schemas import CampaignSpec
    from schemas.exports import DensityExport, VoxelExport

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)

# Option defaults that are spec parameters come from the schema models (their one definition).
_SELECTION = SelectionParams.model_fields
_GCMC = GCMCParams.model_fields


def _fail_spec(exc: SpecError) -> None:
    for error in exc.errors:
        console.print(f"[red]error[/red]: {error.field}: {error.message}", markup=True, highlight=False)
    sys.exit(2)


def _prepare_database() -> str:
    """Migrate the embedded SQLite file; a server database must be migrated by `db upgrade` first."""
    from core.migrate import is_at_head, upgrade

    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        upgrade(url)
    elif not is_at_head(url):
        console.print("[red]error[/red]: the database schema is not current; run `defect-genome db upgrade` first")
        sys.exit(2)
    return url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="defect-genome")
def main() -> None:
    """defect-genome: MLIP training sets of metals with extended defects."""


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=True, help="show a progress bar per stage")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="when it succeeds, write the labelled cells here as train.cfg (MTP), train.pckl.gzip (pacemaker) "
                   "and train.extxyz")
def run(spec_file: Path, progress: bool, export_dir: Path | None) -> None:
    """Run the whole campaign in SPEC_FILE (YAML) in this process."""
    try:
        spec = load_spec_text(spec_file.read_text(), "yaml")
    except SpecError as exc:
        _fail_spec(exc)
    campaign_id, succeeded = _run_campaign(spec, progress)
    if succeeded and export_dir is not None:
        _export_all(campaign_id, export_dir)
    sys.exit(0 if succeeded else 1)


def _run_campaign(spec: CampaignSpec, progress: bool) -> tuple[int, bool]:
    """Submit ``spec`` on the embedded default, follow it to its end (Ctrl-C cancels), print the summary;
    (campaign id, whether it succeeded)."""
    url = _prepare_database()

    from app.auth import LOCAL_USER, get_or_create_user
    from app.services import submit_campaign
    from core import access
    from core.models import Status
    from core.session import session_scope
    from workers.dispatch import in_process

    try:
        with session_scope() as session:
            owner = get_or_create_user(session, LOCAL_USER)
            campaign_id = submit_campaign(session, owner, spec, dispatch=in_process.submit).id
    except SpecError as exc:
        _fail_spec(exc)
    console.print(f"campaign {campaign_id} '{spec.name}' started")

    try:
        _follow(campaign_id, progress)
    except KeyboardInterrupt:
        from app.services import cancel_campaign

        with session_scope() as session:
            cancel_campaign(session, access.get_campaign(session, campaign_id))
        in_process.wait(timeout=60)
        console.print(f"cancelled; resume with: defect-genome resume {campaign_id}")
        sys.exit(130)

    with session_scope() as session:
        campaign = access.get_campaign(session, campaign_id)
        _print_summary(session, campaign, url)
        return campaign_id, campaign.status == Status.succeeded


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("study.json"),
              show_default=True, help="where study.json goes (every number, model files and LAMMPS lines)")
@click.option("--progress/--no-progress", default=True, help="show a progress bar per stage")
def study(spec_file: Path, out: Path, progress: bool) -> None:
    """The B / B+C / B+P study of SPEC_FILE's campaign (its `study` section; the paper suite when it has none):
    label B, C, P and the validation suite with the campaign's labeller, train one SNAP per combination, validate
    each; prints the paper's Fig. 3e and Fig. 6 as tables and the wall time per stage."""
    text = spec_file.read_text()
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        data = None  # load_spec_text below says what is wrong and where
    try:
        if not isinstance(data, dict):
            spec = load_spec_text(text, "yaml")
        else:
            if data.get("study") is None:
                data["study"] = {}
                console.print("no study section: the defaults (paper suite, linear and quadratic SNAP 2J = 8)")
            spec = parse_spec(data)
        if spec.stop_after not in (None, "validation"):
            raise SpecError([FieldError("stop_after", f"the study ends with the validation stage, not "
                                                      f"{spec.stop_after!r}; remove stop_after (or use `run`)")])
    except SpecError as exc:
        _fail_spec(exc)
    campaign_id, succeeded = _run_campaign(spec, progress)
    if not succeeded:
        sys.exit(1)
    from core import access
    from core.session import session_scope
    from mlip.study import study_table, write_study_json
    from schemas import StudyReport
    from schemas.artifacts import CAMPAIGN, ValidationTable

    with session_scope() as session:
        report = StudyReport.model_validate(
            access.get_artifact_data(session, campaign_id, ValidationTable.KIND, CAMPAIGN))
        stages = [(s.stage, s.started_at, s.finished_at) for s in access.get_campaign(session, campaign_id).stages]
    out_console = Console(soft_wrap=True)
    out_console.print(study_table(report), highlight=False, markup=False)
    out_console.print("\nwall time per stage (s): " + ", ".join(
        f"{name} {(end - begin).total_seconds():.0f}" for name, begin, end in stages if begin and end),
        highlight=False)
    out_console.print(f"study.json: {write_study_json(report, out)}", highlight=False)


@main.command()
@click.argument("campaign_id", type=int)
@click.option("--progress/--no-progress", default=True)
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="when it succeeds, write the labelled cells here (as `run --export`)")
def resume(campaign_id: int, progress: bool, export_dir: Path | None) -> None:
    """Resume a campaign of the embedded default in this process: only unfinished work runs."""
    url = _prepare_database()
    from app.services import resume_campaign
    from core import access
    from core.models import Status
    from core.session import session_scope
    from workers.dispatch import in_process

    with session_scope() as session:
        campaign = access.find_campaign(session, campaign_id)
        if campaign is None:
            console.print(f"[red]error[/red]: no campaign {campaign_id} in {url}")
            sys.exit(2)
        resume_campaign(session, campaign, dispatch=in_process.submit)
    _follow(campaign_id, progress)
    with session_scope() as session:
        campaign = access.get_campaign(session, campaign_id)
        _print_summary(session, campaign, url)
        succeeded = campaign.status == Status.succeeded
    if succeeded and export_dir is not None:
        _export_all(campaign_id, export_dir)
    sys.exit(0 if succeeded else 1)


def _follow(campaign_id: int, show: bool) -> None:
    """Poll the database until the campaign ends, one bar per stage."""
    from workers.sweeper import Sweeper

    # This process runs the campaign: an item a killed earlier run left under a lease that has not
    # lapsed yet (resume leaves it alone) runs here once the lease lapses.
    sweeper = Sweeper(resend_pending=False, campaign_id=campaign_id).start()
    try:
        _poll(campaign_id, show)
    finally:
        sweeper.stop()


def _poll(campaign_id: int, show: bool) -> None:
    from core import access
    from core.session import session_scope

    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show, transient=False) as bars:
        tasks: dict[str, TaskID] = {}
        while True:
            with session_scope() as session:
                campaign = access.get_campaign(session, campaign_id)
                notes = access.running_notes(session, campaign_id)
                for stage in campaign.stages:
                    if stage.stage not in tasks:
                        tasks[stage.stage] = bars.add_task(stage.stage, total=None)
                    note = f" {notes[stage.id]}" if stage.id in notes and stage.status == "running" else ""
                    bars.update(
                        tasks[stage.stage],
                        completed=stage.progress_done,
                        total=stage.progress_total or None,
                        description=f"{stage.stage} ({stage.status}){note}",
                    )
                if campaign.status.finished:
                    return
            time.sleep(0.5)


def _print_summary(session: Session, campaign: Campaign, url: str) -> None:
    from workers.pipeline import summarize

    summary = summarize(session, campaign.id)
    out = Console(soft_wrap=True)
    out.print(f"campaign {campaign.id} '{campaign.name}': {campaign.status}")
    for stage in campaign.stages:
        line = f"  {stage.stage}: {stage.status} ({stage.progress_done}/{stage.progress_total})"
        out.print(line + (f" - {stage.error}" if stage.error else ""), highlight=False)
    out.print(f"  snapshots: {summary.snapshots}")
    out.print(f"  atoms (summed over snapshots): {summary.atoms}")
    out.print(f"  defect atoms (summed over snapshots): {summary.defect_atoms}")
    if summary.structure_types:
        types = ", ".join(f"{k} {v}" for k, v in sorted(summary.structure_types.items()))
        out.print(f"  structure types: {types}", highlight=False)
    if summary.environments:
        out.print("  candidate environments by structure type (selected): " + ", ".join(
            f"{kind} {total} ({chosen})" for kind, (total, chosen) in sorted(summary.environments.items())),
            highlight=False)
    if summary.periodic_cells:
        out.print(f"  periodic cells (PCC-GCMC): {summary.periodic_cells}")
        formulas = sorted(summary.cell_formulas.items())
        out.print("  cell compositions: " + ", ".join(f"{formula} x{count}" if count > 1 else formula
                                                      for formula, count in formulas), highlight=False)
    if summary.labels:
        out.print("  labels: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items())), highlight=False)
        if summary.labels.get("succeeded"):
            out.print(f"  export the labelled cells: defect-genome export {campaign.id} --format mtp --datasets P "
                      "--out train.cfg   (or --format ace / extxyz)", highlight=False)
    from core import access

    per_stage = access.structure_counts_by_stage(session, campaign.id)
    if per_stage:
        out.print("  structures: " + ", ".join(f"{stage} {count}" for stage, count in sorted(per_stage.items())),
                  highlight=False)
    settings = get_settings()
    out.print(f"  database: {url}", highlight=False)
    out.print(f"  structure files: {settings.data_dir / 'structures'}", highlight=False)
    out.print(
        f"  list them: defect-genome serve, then GET /api/v1/campaigns/{campaign.id}/structures?stage=sampling",
        highlight=False,
    )


def _basis_options(function: F) -> F:
    options = [
        click.option("--basis", type=click.Choice(["snap", "mtp", "ace", "mlip3"]), default=_SELECTION["basis"].default,
                     show_default=True, help="linear basis of the D-optimality criterion"),
        click.option("--train", "train", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="training set B: extxyz, MTP .cfg or pacemaker .pckl.gzip"),
        click.option("--potential", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help=".mtp (mtp), .yaml (ace) or .almtp (mlip3) potential"),
        click.option("--twojmax", default=_SELECTION["twojmax"].default, show_default=True, help="SNAP: 2 j_max"),
        click.option("--cutoff", default=_SELECTION["snap_cutoff"].default, show_default=True,
                     help="SNAP: pair cutoff, A"),
        click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="output extxyz"),
        click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _science(call: Callable[[], T]) -> T:
    """Run a file-to-file science command; bad input exits 2 with its message, never a traceback."""
    import json

    try:
        summary = call()
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
    click.echo(json.dumps(summary, indent=2))
    return summary


@main.command()
@_basis_options
def grade(basis: str, train: Path, potential: Path | None, twojmax: int, cutoff: float, out: Path,
          inputs: tuple[Path, ...]) -> None:
    """Per-atom extrapolation grade gamma of INPUTS against the training set (MLIP-3 semantics).

    Writes OUT with a per-atom `gamma` array and prints gamma_max and the fractions of
    atoms above 1 (extrapolation), 2 (selection) and 10 (risky).
    """
    from workers.tools import BasisOptions, grade_files

    options = BasisOptions(basis, potential, twojmax, cutoff, get_settings().lammps_threads or 1)
    _science(lambda: grade_files(options, train, inputs, out))


@main.command()
@_basis_options
@click.option("--lattice", type=click.Choice(["bcc", "fcc"]), default="bcc", show_default=True,
              help="perfect lattice; atoms not in it are the candidates")
@click.option("--candidates", type=click.Choice(["defects", "all"]), default=_SELECTION["candidates"].default,
              show_default=True)
@click.option("--gamma-select", default=_SELECTION["gamma_select"].default, show_default=True,
              help="select environments above this gamma")
@click.option("--max-new", default=_SELECTION["max_new"].default, show_default=True, help="most environments selected")
@click.option("--radius", default=_SELECTION["cluster_radius"].default, show_default=True, help="cluster radius, A")
@click.option("--vacuum", default=0.0, show_default=True, help="vacuum padding, A (8 gives the paper's C set)")
def select(basis: str, train: Path, potential: Path | None, twojmax: int, cutoff: float, out: Path,
           inputs: tuple[Path, ...], lattice: str, candidates: str, gamma_select: float, max_new: int,
           radius: float, vacuum: float) -> None:
    """Select diverse high-gamma environments of INPUTS (greedy MaxVol) and write clusters around them."""
    from workers.tools import BasisOptions, select_files

    options = BasisOptions(basis, potential, twojmax, cutoff, get_settings().lammps_threads or 1)
    _science(lambda: select_files(options, train, inputs, out, lattice=lattice, gamma_select=gamma_select,
                                  max_new=max_new, radius=radius, vacuum=vacuum, candidates=candidates))


@main.command("validate")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reference", default=None,
              help="teacher potential (bundled name or path): default WL.meam for SNAP models, "
                   "W_2940_2017_2.snap for MTP; must not be of MODEL's family")
@click.option("--suite", type=click.Choice(["paper", "smoke"]), default="paper", show_default=True,
              help="scenario preset (schemas.validation)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSON report")
@click.option("--sampling-potential", default="W_zhou.eam.alloy", show_default=True,
              help="potential that runs the scenarios' MD (the campaign's sampling potential)")
@click.option("--lattice", type=click.Choice(["bcc", "fcc"]), default="bcc", show_default=True)
@click.option("--element", default=None, help="MTP without a record: its element (default W)")
@click.option("--seed", type=int, default=None, help="suite seed (default the preset's, disjoint from campaigns')")
@click.option("--properties/--no-properties", default=True, show_default=True,
              help="also compare defect properties (vacancy, SIA, surfaces, GB, elastic constants, E-V)")
@click.option("--allow-same-family", is_flag=True, help="accept a reference of MODEL's family (with a warning)")
@click.option("--train", "train", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="training set (extxyz, .cfg, .pckl.gzip): gamma of every atom against its active set (SNAP basis)")
def validate(model: Path, reference: str | None, suite: str, out: Path | None, sampling_potential: str,
             lattice: str, element: str | None, seed: int | None, properties: bool, allow_same_family: bool,
             train: Path | None) -> None:
    """Validate MODEL (SNAP record/.snapcoeff/.snap, or .mtp) on the paper's defect scenarios against a reference.

    Prints the table of errors per scenario (energy meV/atom, forces meV/A, defect atoms) and the
    defect properties, then a JSON summary; writes the full report to OUT.
    """
    from mlip.validation import validate_command

    def call() -> dict:
        report = validate_command(model, reference, suite, out, sampling_potential, lattice, element, seed,
                                  properties, allow_same_family, get_settings().lammps_threads or 1,
                                  warn=lambda text: console.print(f"[yellow]{text}[/yellow]", highlight=False),
                                  train=train)
        click.echo(report.table())
        return {"model": report.model, "reference": report.reference, "suite": report.suite,
                "report": str(out) if out else None,
                "force_rmse_mev_per_A": {s.scenario: s.force_rmse_mev_per_A for s in report.scenarios}}

    _science(call)


@main.command()
@click.argument("cluster", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--potential", required=True, help="bundled potential name (e.g. W_zhou.eam.alloy) or a file path")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="periodic cell, extxyz")
@click.option("--max-atoms", default=_GCMC["max_atoms"].default, show_default=True,
              help="most atoms in an admissible cell")
@click.option("--grid", type=click.Choice(["authors", "wide"]), default=_GCMC["grid"].default, show_default=True,
              help="box grid: the authors' 3x3x3 offsets -1, -0.5, 0 A, or core extent + 1..10 A")
@click.option("--seed", default=None, type=int, help="base random seed (default: derived from the cluster)")
@click.option("--core-radius", default=_GCMC["core_radius"].default, show_default=True,
              help="A; core around the atom nearest the centre, unless the file has a `core` array")
@click.option("--steps", default=_GCMC["steps"].default, show_default=True, help="GCMC/MD steps per box (1 fs)")
@click.option("--exchanges", default=_GCMC["exchanges"].default, show_default=True,
              help="GCMC insertion/deletion attempts every 10 steps")
@click.option("--mc-moves", default=_GCMC["mc_moves"].default, show_default=True,
              help="GCMC translation attempts every 10 steps")
@click.option("--offsets", default=None, help="comma-separated per-axis box offsets, A, replacing the grid's")
@click.option("--processes", default=2, show_default=True, help="boxes run side by side")
def reconstruct(cluster: Path, potential: str, out: Path, max_atoms: int, grid: str, seed: int | None,
                core_radius: float, steps: int, exchanges: int, mc_moves: int, offsets: str | None,
                processes: int) -> None:
    """Periodic cell of a non-periodic CLUSTER by PCC-GCMC, the core kept fixed.

    Writes OUT (extxyz with per-atom `core` and `inserted` arrays) and OUT.candidates.json (every
    box: lengths, atoms, energy per atom, insertions accepted); prints the summary as JSON.
    """
    from pcc_gcmc.cli_support import reconstruct_file

    try:
        box_offsets = None if offsets is None else tuple(float(v) for v in offsets.split(","))
    except ValueError:
        console.print(f"[red]error[/red]: --offsets: {offsets!r} is not a comma-separated list of numbers (A)")
        sys.exit(2)
    _science(lambda: reconstruct_file(cluster, potential, out, max_atoms=max_atoms, grid=grid, seed=seed,
                                      core_radius=core_radius, steps=steps, exchanges=exchanges,
                                      mc_moves=mc_moves, offsets=box_offsets,
                                      max_workers=processes))


EXPORT_FILES = {"mtp": "train.cfg", "ace": "train.pckl.gzip", "extxyz": "train.extxyz"}


def _write_export(session: Session, campaign: Campaign, fmt: str, out: Path, datasets: Sequence[str],
                  filters: ExportFilters | None = None, references: dict[str, float] | None = None) -> int:
    """Write one export file atomically (a failed export leaves no half file); the number of configurations."""
    from app.exports import ExportFilters, export_campaign

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb" if fmt == "ace" else "w") as handle:
            count = export_campaign(session, campaign, fmt, handle, datasets, filters or ExportFilters(), references)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return count


def _write_grids(session: Session, campaign: Campaign, fmt: str, out: Path, datasets: Sequence[str],
                 filters: ExportFilters, voxel: VoxelExport, density: DensityExport) -> int:
    """The voxel or density export (HDF5), written atomically as _write_export."""
    from app.exports import export_densities, export_voxels

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb") as handle:
            if fmt == "voxel":
                count = export_voxels(session, campaign, handle, datasets, filters, voxel)
            else:
                count = export_densities(session, campaign, handle, datasets, density)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return count


S = TypeVar("S", bound="BaseModel")


def _settings(model: type[S], option: str, values: Sequence[str]) -> S:
    """FIELD=VALUE options as the schema model ``model``; a bad one exits 2 naming the option and its field."""
    from pydantic import ValidationError

    fields: dict[str, str] = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or name.strip() not in model.model_fields:
            _fail(f"{option}: {value!r} is not FIELD=VALUE with FIELD one of {', '.join(model.model_fields)}")
        fields[name.strip()] = text.strip()
    try:
        return model.model_validate(fields, strict=False)
    except ValidationError as error:
        first = error.errors()[0]
        field = f"{option} {first['loc'][0] if first['loc'] else ''}".strip()
        _fail(f"{field}: {str(first['msg']).removeprefix('Value error, ')}")


def _fail(message: str) -> NoReturn:
    """Bad input of a command: its one-line message (naming the argument or field), exit status 2."""
    console.print(f"[red]error[/red]: {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


def _export_all(campaign_id: int, directory: Path) -> None:
    """`run --export DIR`: the labelled periodic cells (P) in every format, the paths printed."""
    from core import access
    from core.session import session_scope
    from mlip import ExportError

    with session_scope() as session:
        campaign = access.get_campaign(session, campaign_id)
        for fmt, name in EXPORT_FILES.items():
            out = directory / name
            try:
                count = _write_export(session, campaign, fmt, out, ("P",))
            except (ExportError, ValueError, OSError) as exc:
                console.print(f"[red]export {fmt} failed[/red]: {exc}", highlight=False)
                sys.exit(1)
            click.echo(f"  exported {count} labelled configurations ({fmt}): {out.resolve()}")


@main.command()
@click.argument("campaign_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["mtp", "ace", "extxyz", "voxel", "density"]), required=True,
              help="mtp: MLIP .cfg; ace: pacemaker .pckl.gzip; extxyz; voxel: HDF5 voxel grids with the labels "
              "(3D-CNN surrogates, --voxel); density: HDF5 of the GPAW labels' stored electron densities and their "
              "2-point autocorrelations (labelling.save_density, --density)")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--datasets", default="B,P", show_default=True, help="comma-separated subset of B, C, P, OTF")
@click.option("--max-atoms", type=int, default=None, help="drop configurations with more atoms")
@click.option("--max-force", type=float, default=None, help="drop configurations with a larger force, eV/A")
@click.option("--reference-energy", "references", multiple=True, metavar="ELEMENT=EV",
              help="per-atom reference energy for energy_corrected (ace), e.g. W=-4.57; default: the raw energy")
@click.option("--voxel", "voxel_options", multiple=True, metavar="FIELD=VALUE",
              help="voxel format: resolution=0.5 (A), mode=occupancy|gaussian, sigma=A, region=cell|inner|outer, "
              "padding=A, max_voxels=N")
@click.option("--density", "density_options", multiple=True, metavar="FIELD=VALUE",
              help="density format: voxel_width=0.2 (A), size=51, normalise=true|false, wrap=true|false")
def export(campaign_id: int, fmt: str, out: Path, datasets: str, max_atoms: int | None, max_force: float | None,
           references: tuple[str, ...], voxel_options: tuple[str, ...], density_options: tuple[str, ...]) -> None:
    """Write the labelled training set of a campaign (B = your training file, P = PCC-GCMC cells)."""
    url = _prepare_database()
    from app.exports import ExportFilters, parse_datasets
    from core import access
    from core.session import session_scope
    from schemas.exports import DensityExport, VoxelExport

    if voxel_options and fmt != "voxel":
        _fail("--voxel: voxel settings apply to --format voxel only")
    if density_options and fmt != "density":
        _fail("--density: density settings apply to --format density only")
    voxel = _settings(VoxelExport, "--voxel", voxel_options)
    density = _settings(DensityExport, "--density", density_options)

    def write() -> dict:
        reference_energies = {}
        for entry in references:
            element, _, value = entry.partition("=")
            try:
                reference_energies[element.strip()] = float(value)
            except ValueError:
                raise ValueError(f"--reference-energy: {entry!r} is not ELEMENT=eV, e.g. W=-4.57") from None
        with session_scope() as session:
            campaign = access.find_campaign(session, campaign_id)
            if campaign is None:
                raise ValueError(f"no campaign {campaign_id} in {url}")
            chosen = parse_datasets(datasets)
            filters = ExportFilters(max_atoms=max_atoms, max_force=max_force)
            if fmt in ("voxel", "density"):
                count = _write_grids(session, campaign, fmt, out, chosen, filters, voxel, density)
            else:
                count = _write_export(session, campaign, fmt, out, chosen, filters, reference_energies or None)
        return {"campaign": campaign_id, "format": fmt, "datasets": list(chosen), "configurations": count,
                "path": str(out)}

    _science(write)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the HDF5 file")
@click.option("--species", required=True, help="channel order, comma-separated, e.g. W or Ni,Al")
@click.option("--voxel", "voxel_options", multiple=True, metavar="FIELD=VALUE",
              help="resolution=0.5 (A), mode=occupancy|gaussian, sigma=A, region=cell|inner|outer, padding=A, "
              "max_voxels=N")
@click.option("--geometry-only", is_flag=True, help="store configurations without an energy (no labels)")
def voxelize(inputs: tuple[Path, ...], out: Path, species: str, voxel_options: tuple[str, ...],
             geometry_only: bool) -> None:
    """Voxel grids of the configurations in INPUTS (any ASE format; labels and info['elastic_constants'], e.g. from
    `defect-genome elastic`, are kept) in one HDF5 file, as `export --format voxel` writes a campaign's."""
    from schemas.exports import VoxelExport

    settings = _settings(VoxelExport, "--voxel", voxel_options)

    def write() -> dict:
        import ase.io

        from formats.voxel import write_voxel_dataset

        images = [atoms for path in inputs for atoms in ase.io.read(path, index=":")]
        names = [part.strip() for part in species.split(",") if part.strip()]
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        try:
            with open(partial, "wb") as handle:
                count = write_voxel_dataset(handle, images, species=names, require_labels=not geometry_only,
                                            **settings.model_dump())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(out)
        return {"configurations": count, "species": names, **settings.model_dump(), "path": str(out)}

    _science(write)


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
def convert(source: Path, target: Path) -> None:
    """Convert a dataset between the formats of the registry (extxyz, MTP .cfg, pacemaker .pckl.gzip), labels
    kept; each format is told by its file's suffix.

    The server never unpickles an upload: convert a pacemaker pickle you trust here, then upload the extxyz.
    """
    import formats

    def write() -> dict:
        target_format = formats.format_for(target, "TARGET")
        images = formats.read(source, allow_pickle=True)  # a local file the user chose: pickles allowed
        formats.write(target, images, target_format)
        return {"configurations": len(images), "atoms": sum(len(a) for a in images), "path": str(target)}

    _science(write)


@main.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--potential", required=True, help="bundled potential name (e.g. W_zhou.eam.alloy) or a file path")
@click.option("--strain", default=1e-3, show_default=True, help="+/- strain of each Voigt component, in (0, 0.05)")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="extxyz of the configurations with info['elastic_constants'] (6x6 Voigt, GPa, flat 36 row-major)")
@click.option("--threads", default=1, show_default=True, type=int, help="OpenMP threads of LAMMPS")
def elastic(inputs: tuple[Path, ...], potential: str, strain: float, output: Path | None, threads: int) -> None:
    """Elastic-constant labels: the full 6x6 Voigt stiffness (GPa, 0 K) of every configuration of every INPUT
    (any ASE format, all frames; periodic cells, defects and alloys included) by +/- strains with positions
    relaxed, sampling.properties.elastic_tensor. Prints index, source, atoms, C11, C12, C44 (cubic averages)
    and the Voigt bulk modulus B; --output gets info['elastic_constants'] (36 floats, row-major 6x6, GPa) and
    info['elastic_constants_units'] = 'GPa'.
    """

    from md.potentials import load_potential
    from sampling.elastic_labels import LabelInputError, label_configurations, read_configurations, table_lines

    try:
        configurations = read_configurations(inputs)
        loaded = load_potential(potential)
    except LabelInputError as exc:
        _fail(str(exc))
    except ValueError as exc:  # PotentialError: unknown name or unreadable file
        _fail(f"--potential: {exc}")
    try:
        results = label_configurations(
            configurations, loaded, strain=strain, threads=threads,
            progress=lambda i, source: console.print(f"[{i + 1}/{len(configurations)}] {source}", highlight=False),
        )
    except (ValueError, RuntimeError) as exc:  # LabelInputError (a ValueError) names its argument
        _fail(str(exc))
    for line in table_lines(results):
        click.echo(line)
    if output is not None:
        import ase.io

        try:
            ase.io.write(output, [r.atoms for r in results], format="extxyz")
        except OSError as exc:
            _fail(f"--output: {exc}")
        click.echo(f"wrote {len(results)} labelled configurations to {output} (info['elastic_constants'], GPa)")


@main.command()
@click.option("--host", default=None, help="default DG_API_HOST (127.0.0.1)")
@click.option("--port", default=None, type=int, help="default DG_API_PORT (8000)")
def serve(host: str | None, port: int | None) -> None:
    """Serve the REST API; with no DG_BROKER_URL, tasks run in this process."""
    import uvicorn

    from app.main import create_app

    _prepare_database()
    settings = get_settings()
    uvicorn.run(create_app(), host=host or settings.api_host, port=port or settings.api_port)


@main.command()
@click.option("--queues", default="md,select,gcmc,dft", show_default=True, help="comma-separated queues to consume")
@click.option("--concurrency", default=1, show_default=True, type=int, help="tasks run at once")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int, loglevel: str) -> None:
    """Run a Celery worker on the given queues (needs DG_BROKER_URL)."""
    from workers.pipeline import QUEUES

    settings = get_settings()
    if settings.in_process:
        console.print("[red]error[/red]: DG_BROKER_URL is not set; a worker needs a broker, e.g. redis://127.0.0.1:6379/0")
        sys.exit(2)
    unknown = sorted(set(queues.split(",")) - set(QUEUES))
    if unknown:
        console.print(f"[red]error[/red]: --queues: unknown {unknown}; choose from {','.join(QUEUES)}")
        sys.exit(2)
    _prepare_database()
    from core.session import get_engine
    from workers.tasks import celery_app

    # Celery forks its pool from this process: hand no open connection down (each child also drops
    # what it inherits, core/session.py)
    get_engine().dispose()
    celery_app.worker_main(
        ["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--loglevel={loglevel}", "--pool=prefork"]
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply the Alembic migrations (the prestart step of a deployment)."""
    from core.migrate import current_revision
    from core.migrate import upgrade as alembic_upgrade

    url = get_settings().resolved_database_url
    alembic_upgrade(url)
    click.echo(f"database at revision {current_revision(url)}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--user", "user_name", default="local", show_default=True, help="owner of the token")
@click.option("--label", default="", help="a note to recognise the token by")
def token_create(user_name: str, label: str) -> None:
    """Create a bearer token and print it (it is shown only once)."""
    from app.auth import create_token
    from core.session import session_scope

    _prepare_database()
    with session_scope() as session:
        click.echo(create_token(session, user_name, label))


if __name__ == "__main__":
    main()
