"""The campaign pipeline: stage order, fan-out and state transitions.

Everything here runs inside the caller's transaction and returns the tasks to
enqueue; the caller enqueues them only after the commit, so a worker never
sees a row that is not yet visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from core import access
from core.access import load_artifact, load_artifacts
from core.models import Campaign, StageRun, Status, User, WorkItem, utcnow
from core.settings import get_settings
from labelling.reference import ReferencePotentialError
from labelling.settings import REFERENCE_ENGINES
from md.engine import LammpsError
from md.potentials import Potential, PotentialError, check_element
from sampling.protocols import snapshot_count
from sampling.structures import build_structure
from schemas import CampaignSpec, FieldError, SpecError
from schemas.artifacts import OTFIterationRecord, StructureTypeCounts
from schemas.limits import Limits, effective, limit_errors, structure_message
from schemas.names import StructureKind
from schemas.sampling import Structure as StructureSpec
from workers import lease
from workers.stages import otf
from workers.stages.common import PlannedItem, campaign_material, resolve_potential
from workers.stages.labelling import dft_settings, label_structure, labelling_reference, plan_labels
from workers.stages.reconstruction import assemble_cells, plan_boxes, run_box
from workers.stages.refinement import ensemble_spread, refinement_of, train_model
from workers.stages.sampling import run_protocol
from workers.stages.selection import build_active_set, grade_snapshot, select_and_cut
from workers.stages.study import build_validation_suite, run_validation_study


@dataclass(frozen=True)
class StageDef:
    """One stage: its queue, the named Celery task that runs one of its work items, the function that task
    runs (it takes the item's id), and the plan that fans the stage out into items."""

    name: str
    queue: str
    task_name: str
    runner: Callable[[int], None]
    # (session, campaign id, spec) -> the work items; later stages fan out over earlier results. A stage of
    # the on-the-fly loop (loop=True) is planned per iteration: (session, campaign id, spec, iteration).
    plan: Callable[..., list[PlannedItem]]
    loop: bool = False


@dataclass(frozen=True)
class TaskRef:
    """What a dispatcher needs to send one work item to its queue."""

    item_id: int
    task_name: str
    queue: str


def _plan_sampling(_session: Session, _campaign_id: int, spec: CampaignSpec) -> list[PlannedItem]:
    return [
        PlannedItem(
            key=name,
            params={"protocol_index": index},
            progress_total=snapshot_count(protocol.kind, **protocol.protocol_params()),
        )
        for index, (name, protocol) in enumerate(zip(spec.protocol_names(), spec.sampling.protocols, strict=True))
    ]


def _plan_one(_session: Session, _campaign_id: int, _spec: CampaignSpec) -> list[PlannedItem]:
    return [PlannedItem(key="campaign", params={}, progress_total=1)]


def _plan_grading(session: Session, campaign_id: int, _spec: CampaignSpec) -> list[PlannedItem]:
    snapshots = access.structure_sources(session, campaign_id, StructureKind.SAMPLING)
    return [PlannedItem(key=source, params={"structure_id": sid}, progress_total=1) for sid, source in snapshots]


# The stage order. The refinement stages run only for a spec with a refinement section (stages_for). The
# on-the-fly stages (loop=True) run once per iteration, as stage runs named <stage>.<iteration>: the first
# iteration's are created with the campaign, each next one when the previous iteration's training says go on.
STAGES: tuple[StageDef, ...] = (
    StageDef("sampling", "md", "dg.sampling.run_protocol", run_protocol, _plan_sampling),
    StageDef("training_set", "select", "dg.selection.build_active_set", build_active_set, _plan_one),
    StageDef("grading", "select", "dg.selection.grade_snapshot", grade_snapshot, _plan_grading),
    StageDef("selection", "select", "dg.selection.select_and_cut", select_and_cut, _plan_one),
    StageDef("gcmc_boxes", "gcmc", "dg.reconstruction.run_box", run_box, plan_boxes),
    StageDef("reconstruction", "gcmc", "dg.reconstruction.assemble", assemble_cells, _plan_one),
    StageDef("validation_suite", "md", "dg.study.build_validation_suite", build_validation_suite, _plan_one),
    StageDef("labelling", "dft", "dg.labelling.label_structure", label_structure, plan_labels),
    StageDef("training", "select", "dg.refinement.train_model", train_model, _plan_one),
    StageDef("otf_md", "md", "dg.otf.run_md", otf.run_md, otf.plan_md, loop=True),
    StageDef("otf_selection", "select", "dg.otf.select_and_cut", otf.select_and_cut, otf.plan_one, loop=True),
    StageDef("otf_boxes", "gcmc", "dg.otf.run_box", run_box, otf.plan_boxes, loop=True),
    StageDef("otf_cells", "gcmc", "dg.otf.assemble_cells", otf.assemble_cells, otf.plan_cells, loop=True),
    StageDef("otf_labelling", "dft", "dg.otf.label_structure", label_structure, otf.plan_labels, loop=True),
    StageDef("otf_training", "select", "dg.otf.retrain", otf.retrain_and_record, otf.plan_one, loop=True),
    StageDef("ensemble", "select", "dg.refinement.ensemble_spread", ensemble_spread, _plan_one),
    StageDef("validation", "select", "dg.study.run_validation_study", run_validation_study, _plan_one),
)
QUEUES = ("md", "select", "gcmc", "dft")
LOOP_STAGES = tuple(stage.name for stage in STAGES if stage.loop)
REFINEMENT_STAGES = ("training", *LOOP_STAGES, "ensemble")
STUDY_STAGES = ("validation_suite", "validation")


def stages_for(spec: CampaignSpec) -> tuple[StageDef, ...]:
    """The stages this campaign runs: all, or up to the one named by `stop_after` (``otf``: the end of the
    on-the-fly loop); the refinement stages only with a refinement section, the ensemble only with
    refinement.ensemble, the study's only with a study section."""
    if spec.refinement is None:
        skipped = set(REFINEMENT_STAGES)
    else:
        skipped = {"ensemble"} if spec.refinement.ensemble is None else set()
    if spec.study is None:
        skipped |= set(STUDY_STAGES)
    stages = [stage for stage in STAGES if stage.name not in skipped]
    names = [stage.name for stage in stages]
    stop_after = LOOP_STAGES[-1] if spec.stop_after == "otf" else spec.stop_after
    last = names.index(stop_after) if stop_after else len(stages) - 1
    return tuple(stages[: last + 1])


def run_name(stage: StageDef, iteration: int = 1) -> str:
    """The name of a stage run: the stage's, with the iteration for a stage of the on-the-fly loop."""
    return otf.stage_name(stage.name, iteration) if stage.loop else stage.name


def definition(stage_run_name: str) -> tuple[StageDef, int | None]:
    """(stage, iteration) of a stage run's name."""
    name, iteration = otf.split_stage_name(stage_run_name)
    return STAGE_BY_NAME[name], iteration


STAGE_BY_TASK = {stage.task_name: stage for stage in STAGES}
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}
assert len(STAGE_BY_TASK) == len(STAGES), "every stage has its own task name"


def potential_species_errors(spec: CampaignSpec, potential: Potential) -> list[FieldError]:
    """A spec with ``elements``: each of them described by ``potential`` (the field elements). A spec with
    ``element`` alone is checked by check_element (the field potential, as before alloys)."""
    if spec.elements is None:
        return []
    missing = [element for element in spec.species if element not in potential.elements]
    if not missing:
        return []
    return [FieldError("elements", (
        f"the potential {potential.name} describes {', '.join(potential.elements)}, not {', '.join(missing)}; "
        f"choose a potential with every element of elements, or remove {', '.join(missing)} from elements"))]


def check_spec(spec: CampaignSpec) -> None:
    """Checks that need the science packages; raises SpecError naming the field.

    First the cheap ones (schemas.limits against the server's DG_MAX_* and the spec's budget: atoms of each
    structure from its geometry, atom-steps, snapshots), so nothing is built for a spec above a limit. Then
    the potential is read by LAMMPS and the crystal relaxed with it (about 50 ms), so a file for the wrong
    element or a truncated file is refused before anything is stored; every starting structure is built
    once (its exact atom count checked against the limit), so a box too small for the potential's cutoff
    or too many vacancies is refused too. The API runs this in a process of app.spec_checks, with a time
    bound; the CLI in its own process.
    """
    server = Limits.of(get_settings())
    cheap = limit_errors(spec, server)
    if cheap:
        raise SpecError([FieldError(field, message) for field, message in cheap])
    bounds = effective(spec, server)
    try:
        potential = resolve_potential(spec.potential)
        missing = potential_species_errors(spec, potential)
        if missing:
            raise SpecError(missing)
        check_element(potential, spec.element)
        material = campaign_material(spec, potential)
        if spec.lattice_constant is not None:  # the potential is run by LAMMPS all the same
            campaign_material(spec.model_copy(update={"lattice_constant": None}), potential)
    except (PotentialError, LammpsError) as exc:
        raise SpecError([FieldError("potential", str(exc))]) from None
    errors = []

    def build(structure: StructureSpec, field: str) -> None:
        try:
            atoms = build_structure(structure, material, potential)
        except ValueError as exc:
            errors.append(FieldError(field, str(exc)))
            return
        limit = bounds["max_structure_atoms"]
        if len(atoms) > limit.value:  # the estimate was close below the limit, the structure is not
            errors.append(FieldError(field, structure_message(len(atoms), limit, estimated=False)))

    snapshots = 0
    for index, protocol in enumerate(spec.sampling.protocols):
        field = f"sampling.protocols.{index}"
        try:
            snapshots += snapshot_count(protocol.kind, **protocol.protocol_params())
        except ValueError as exc:
            errors.append(FieldError(field, str(exc)))
        build(protocol.structure, f"{field}.structure")
    names = [stage.name for stage in stages_for(spec)]
    if "labelling" in names:
        try:
            dft_settings(spec)
        except ReferencePotentialError as exc:  # the reference potential (or the campaign's own, for eam): its field
            errors.append(FieldError(exc.field, exc.reason))
        except ValueError as exc:
            errors.append(FieldError("labelling", str(exc)))
        else:
            errors += _study_errors(spec)
    if "otf_md" in names:
        for index, target in enumerate(refinement_of(spec).otf.targets):
            build(target.structure, f"refinement.otf.targets.{index}.structure")
    limit = bounds["max_snapshots"]
    if snapshots > limit.value:
        errors.append(FieldError(
            "budget.max_snapshots" if limit.from_budget else "sampling.protocols",
            f"the protocols store {snapshots} snapshots, above {limit.source} = {limit.value}; "
            "increase snapshot_every",
        ))
    if errors:
        raise SpecError(errors)


def _study_errors(spec: CampaignSpec) -> list[FieldError]:
    """A study's reference (the campaign's labeller) must lie outside the SNAP family of its models, as DFT does:
    a SNAP reproduces a SNAP teacher exactly (DESIGN.md section 5)."""
    if spec.study is None or spec.study.allow_same_family or spec.labelling.engine not in REFERENCE_ENGINES:
        return []
    from labelling.reference import reference_in_model_family

    resolved = labelling_reference(spec)
    if not reference_in_model_family(resolved, "snap"):
        return []
    field = "labelling.reference" if spec.labelling.reference is not None else "potential"
    return [FieldError(field, f"{resolved.name} ({resolved.pair_style}) labels this study, whose models are SNAP: a "
                              "SNAP reproduces a SNAP teacher exactly, so the errors would not measure transfer; "
                              "label with a potential outside the family (e.g. WL.meam) or set "
                              "study.allow_same_family")]


def create_campaign(session: Session, owner: User, spec: CampaignSpec) -> Campaign:
    campaign = Campaign(
        owner_id=owner.id,
        name=spec.name,
        element=spec.element,
        spec=spec.model_dump(mode="json"),
        status=Status.pending,
    )
    campaign.stages = [StageRun(stage=run_name(stage), position=i) for i, stage in enumerate(stages_for(spec))]
    session.add(campaign)
    session.flush()
    return campaign


def _lock_campaign(session: Session, campaign_id: int) -> Campaign | None:
    # Row lock on PostgreSQL so two finishing items cannot both plan the next stage;
    # SQLite serialises writers anyway.
    return access.lock_campaign(session, campaign_id)


def _refresh_progress(session: Session, stage_run: StageRun) -> None:
    stage_run.progress_done, stage_run.progress_total = access.stage_progress(session, stage_run.id)


def _plan(session: Session, campaign: Campaign, stage_run: StageRun) -> list[TaskRef]:
    stage, iteration = definition(stage_run.stage)
    spec = CampaignSpec.model_validate(campaign.spec)
    if stage.loop:
        planned = stage.plan(session, campaign.id, spec, iteration)
    else:
        planned = stage.plan(session, campaign.id, spec)
    items = [
        WorkItem(
            campaign_id=campaign.id,
            key=planned.key,
            task_name=stage.task_name,
            queue=stage.queue,
            params=planned.params,
            progress_total=planned.progress_total,
        )
        for planned in planned
    ]
    stage_run.items.extend(items)
    stage_run.status = Status.running
    stage_run.started_at = utcnow()
    session.flush()
    _refresh_progress(session, stage_run)
    return [TaskRef(item.id, item.task_name, item.queue) for item in items]


def advance(session: Session, campaign_id: int) -> list[TaskRef]:
    """Move the campaign forward after any change of its items; return new tasks."""
    campaign = _lock_campaign(session, campaign_id)
    if campaign is None or campaign.status.finished:
        return []
    campaign.status = Status.running
    for stage_run in campaign.stages:
        if stage_run.status == Status.succeeded:
            continue
        if not stage_run.items:
            refs = _plan(session, campaign, stage_run)
            if refs:
                return refs
            stage_run.status, stage_run.finished_at = Status.succeeded, utcnow()  # nothing to fan out over
            continue
        _refresh_progress(session, stage_run)
        statuses = {item.status for item in stage_run.items}
        stage_run.attempts = max(item.attempts for item in stage_run.items)
        if Status.failed in statuses:
            failed = [item for item in stage_run.items if item.status == Status.failed]
            stage_run.status = Status.failed
            stage_run.error = "; ".join(f"{item.key}: {item.error}" for item in failed)
            stage_run.finished_at = utcnow()
            campaign.status = Status.failed
            campaign.error = f"stage {stage_run.stage} failed: {stage_run.error}"
            campaign.finished_at = utcnow()
            return []
        if statuses == {Status.succeeded}:
            stage_run.status = Status.succeeded
            stage_run.finished_at = utcnow()
            if _next_iteration(session, campaign, stage_run):
                return advance(session, campaign_id)  # the stage list grew: walk it again
            continue
        return []  # items still pending or running
    campaign.status = Status.succeeded
    campaign.finished_at = utcnow()
    return []


def _next_iteration(session: Session, campaign: Campaign, finished: StageRun) -> bool:
    """After an on-the-fly iteration's last stage: the next iteration's stage runs, unless its record stopped
    the loop. They go right after it; the stages after the loop move down. Returns whether any was added."""
    stage, iteration = definition(finished.stage)
    if stage.name != LOOP_STAGES[-1] or iteration is None:
        return False
    record = load_artifact(session, campaign.id, OTFIterationRecord, f"{iteration:03d}")
    names = {stage_run.stage for stage_run in campaign.stages}
    new = [otf.stage_name(name, iteration + 1) for name in LOOP_STAGES]
    if record is None or record.stopped is not None or new[0] in names:
        return False
    for stage_run in campaign.stages:
        if stage_run.position > finished.position:
            stage_run.position += len(new)
    for offset, name in enumerate(new, start=1):
        session.add(StageRun(campaign_id=campaign.id, stage=name, position=finished.position + offset))
    session.flush()
    session.expire(campaign, ["stages"])
    return True


def start(session: Session, campaign: Campaign) -> list[TaskRef]:
    return advance(session, campaign.id)


def cancel(session: Session, campaign: Campaign) -> None:
    """Stop a campaign: unfinished items are cancelled; running tasks stop at their next check."""
    if campaign.status.finished:
        return
    now = utcnow()
    unfinished = (Status.pending, Status.running)
    for stage_run in campaign.stages:
        if stage_run.status in unfinished:
            stage_run.status, stage_run.finished_at = Status.cancelled, now
    access.cancel_unfinished_items(session, campaign.id, now)
    campaign.status, campaign.finished_at = Status.cancelled, now


def resume(session: Session, campaign: Campaign) -> list[TaskRef]:
    """Run only unfinished work again: succeeded items and stages are kept as they are.

    An item whose lease a live process holds (workers/lease.py) is left to it: a running item runs on;
    a cancelled one still stopping becomes pending under that lease, and its holder sends it again when
    it lets go. Every other unfinished item is reset with a compare-and-set, so an item claimed since it
    was read is not touched. On the embedded default the leases of this machine's dead processes count
    as lapsed at once (a `run` killed a moment ago).
    """
    if campaign.status == Status.succeeded:
        return []
    now = utcnow()
    open_stages = [stage_run for stage_run in campaign.stages if stage_run.status != Status.succeeded]
    stage_ids = [stage_run.id for stage_run in open_stages]
    if get_settings().in_process:
        lease.expire_dead_local_leases(session, stage_ids)
    reset = access.reset_lapsed_items(session, stage_ids, lease.lapsed_before(now), now)
    # what is left cancelled holds a live lease: pending, sent again by its holder
    access.reopen_cancelled_items(session, stage_ids)
    for stage_run in open_stages:
        for item in stage_run.items:
            session.expire(item)
        stage_run.status, stage_run.error, stage_run.finished_at = Status.pending, None, None
        if stage_run.items:
            stage_run.status = Status.running
    campaign.status, campaign.error, campaign.finished_at = Status.running, None, None
    session.flush()
    return [TaskRef(*row) for row in sorted(reset)] + advance(session, campaign.id)


def pending_tasks(session: Session, item_ids: Iterable[int]) -> list[TaskRef]:
    rows = access.work_items(session, item_ids)
    return [TaskRef(item.id, item.task_name, item.queue) for item in rows]


@dataclass
class CampaignSummary:
    snapshots: int = 0
    atoms: int = 0
    defect_atoms: int = 0
    structure_types: dict[str, int] = field(default_factory=dict)
    periodic_cells: int = 0
    labels: dict[str, int] = field(default_factory=dict)  # ledger state -> cells of this campaign
    # CNA structure type -> (candidate environments, selected ones), over the sampling snapshots
    environments: dict[str, tuple[int, int]] = field(default_factory=dict)
    cell_formulas: dict[str, int] = field(default_factory=dict)  # composition -> reconstructed cells


def summarize(session: Session, campaign_id: int) -> CampaignSummary:
    """Counts over the stored sampling snapshots (atoms and defect atoms summed over snapshots),
    the reconstructed periodic cells and the states of their labels."""
    snapshots, atoms, defect_atoms = access.stage_totals(session, campaign_id, StructureKind.SAMPLING)
    summary = CampaignSummary(snapshots=int(snapshots), atoms=int(atoms), defect_atoms=int(defect_atoms))
    for _protocol, stored in load_artifacts(session, campaign_id, StructureTypeCounts):
        for name, count in stored.counts().items():
            summary.structure_types[name] = summary.structure_types.get(name, 0) + count
    summary.periodic_cells = access.count_structures(session, campaign_id, StructureKind.PERIODIC)
    summary.environments = access.environment_counts_by_type(session, campaign_id, StructureKind.SAMPLING)
    summary.cell_formulas = access.formula_counts(session, campaign_id, StructureKind.PERIODIC)
    summary.labels = access.label_states_of_stage(session, campaign_id, StructureKind.PERIODIC)
    return summary
