"""The study stages (spec section ``study``): the paper's B / B+C / B+P (/ +OTF) comparison inside a campaign.

Stage ``validation_suite`` (before labelling) builds the validation scenarios with the sampling potential and a
seed disjoint from the sampling (``mlip.study.build_study_suite``) and stores each configuration as a structure of
stage ``validation`` (its per-atom ``defect`` mask and ``scenario`` travel in the extxyz). The labelling stage then
labels them through the job ledger with the cells, dataset B and the vacuum clusters C, so with DFT they run on
the ``dft`` queue or Slurm like every other label. Stage ``validation`` (last) trains one SNAP per dataset
combination and kind and validates each on the labelled suite (``mlip.study.train_and_validate``); with a
refinement section it also validates the campaign's own MTP (OTF's last model) on the same suite
(``mlip.validation.validate``, as ``defect-genome validate`` does). The report is the campaign's ``validation``
artifact and ``<campaign dir>/study/study.json``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from ase import Atoms

from core.access import load_artifact, put_structure, store_artifact
from core.session import session_scope
from core.settings import get_settings
from core.storage import StructureStore
from labelling.settings import REFERENCE_ENGINES
from md.potentials import Potential
from mlip.study import build_study_suite, study_suite_params, train_and_validate, write_study_json
from mlip.validation import load_model, validate
from schemas import CampaignSpec
from schemas.artifacts import ValidationSuite, ValidationTable
from schemas.names import StructureKind
from schemas.study import StudyParams
from schemas.validation import ValidationReport
from workers.stages.common import UPLOAD_PREFIX, campaign_dir, load_item, resolve_data_file
from workers.stages.labelling import labelled_basic_set, labelled_structures, labelling_reference
from workers.stages.refinement import final_model

VALIDATION = "validation"  # artifact kind and structure stage
SUITE = ValidationSuite.KIND  # artifact kind of the built suite
CAMPAIGN = "campaign"
STUDY_DIR = "study"


def study_params(spec: CampaignSpec) -> StudyParams:
    """The spec's study section with what the campaign gives: element, lattice, sampling potential."""
    if spec.study is None:
        raise ValueError("the campaign spec has no study section: no study stage runs")
    potential = spec.potential
    if potential.startswith(UPLOAD_PREFIX):
        potential = str(resolve_data_file(potential, "potential"))
    return StudyParams(**spec.study.model_dump(), element=spec.element, lattice=spec.lattice,
                       sampling_potential=potential)


def build_validation_suite(item_id: int) -> None:
    """Build the suite and store its configurations (stage ``validation``, source ``validation/<scenario>/<k>``)."""
    campaign_id, spec, _ = load_item(item_id)
    params = study_params(spec)
    timings: dict[str, float] = {}
    configs, a = build_study_suite(params, timings=timings)
    store = StructureStore(get_settings().data_dir)
    with session_scope() as session:
        for scenario, images in configs.items():
            for k, atoms in enumerate(images):
                atoms.info["scenario"] = scenario
                put_structure(session, store, campaign_id, atoms, stage=VALIDATION,
                              source=f"{VALIDATION}/{scenario}/{k}",
                              info={"scenario": scenario, "defect_atoms": int(atoms.arrays["defect"].sum())})
        store_artifact(session, campaign_id, CAMPAIGN, ValidationSuite.model_validate({
            "lattice_constant": a, "seed": study_suite_params(params).seed, "suite": params.suite,
            "scenarios": {s: {"configurations": len(v), "atoms": sum(len(x) for x in v),
                              "defect_atoms": int(sum(x.arrays["defect"].sum() for x in v))}
                          for s, v in configs.items()},
            "wall_time_s": timings, "units": {"lattice_constant": "A", "wall_time_s": "s"}}))


def _labeller(spec: CampaignSpec) -> tuple[str, list[str], Potential | None]:
    """What labelled the campaign (the study's reference): its name and, for a potential, its LAMMPS lines and the
    potential itself (for the defect properties)."""
    if spec.labelling.engine in REFERENCE_ENGINES:
        resolved = labelling_reference(spec)
        return resolved.name, resolved.lammps_lines(), resolved.potential()
    return f"{spec.labelling.engine} ({spec.labelling.profile})", [], None


def _suite(images: list[Atoms]) -> dict[str, list[Atoms]]:
    by_scenario: dict[str, list[Atoms]] = defaultdict(list)
    for atoms in images:
        by_scenario[str(atoms.info["scenario"])].append(atoms)
    return dict(by_scenario)


def run_validation_study(item_id: int) -> None:
    """Train and validate the study's models on the campaign's ledger labels; store the report."""
    campaign_id, spec, _ = load_item(item_id)
    params = study_params(spec)
    with session_scope() as session:
        data = {"B": labelled_basic_set(session, campaign_id, spec),
                "C": labelled_structures(session, campaign_id, StructureKind.CLUSTER_VACUUM),
                "P": labelled_structures(session, campaign_id, StructureKind.PERIODIC),
                "OTF": labelled_structures(session, campaign_id, StructureKind.OTF) if spec.refinement else []}
        suite = _suite(labelled_structures(session, campaign_id, VALIDATION))
    if not suite:
        raise ValueError("study: no validation configuration has a label (see the campaign's label table)")
    name, lines, potential = _labeller(spec)
    notes = []
    missing = {key for key in ("B", "C", "P") if not data[key]}
    if missing:
        notes.append(f"no labelled configuration in {', '.join(sorted(missing))}: its combinations are skipped")
    workdir = campaign_dir(campaign_id) / STUDY_DIR
    report = train_and_validate({k: v for k, v in data.items() if v}, suite, params, workdir, reference=name,
                                reference_lammps=lines, lattice_constant=_lattice_constant(campaign_id),
                                notes=notes, reference_potential=potential)
    if spec.refinement:
        report.campaign_model_stage, report.campaign_model = _validate_campaign_model(campaign_id, spec, suite)
    write_study_json(report, workdir / "study.json")
    with session_scope() as session:
        store_artifact(session, campaign_id, CAMPAIGN, ValidationTable.model_validate(report.model_dump()))


def _validate_campaign_model(
    campaign_id: int, spec: CampaignSpec, suite: dict[str, list[Atoms]]
) -> tuple[Literal["otf", "mtp_training"], ValidationReport]:
    """The campaign's refined MTP on the study's labelled suite (the ``defect-genome validate`` code)."""
    with session_scope() as session:
        found = final_model(session, campaign_id)
    if found is None:
        raise ValueError("study: the refinement stages left no MTP to validate")
    stage, path = found
    model = load_model(path, spec.element)
    model.name = f"MTP ({'OTF' if stage == 'otf' else 'trained'})"
    report = validate(model, suite)
    return stage, report


def _lattice_constant(campaign_id: int) -> float:
    with session_scope() as session:
        suite = load_artifact(session, campaign_id, ValidationSuite, CAMPAIGN)
    return suite.lattice_constant if suite else 0.0
