"""The B vs B+C vs B+P study of the paper (Fig. 3e, Fig. 6) as a pure function: no database, no queue.

:func:`run_study` ``(datasets, reference, params, workdir) -> StudyReport``

1. ``datasets`` maps ``B`` (basic), ``C`` (vacuum clusters), ``P`` (periodic PCC-GCMC cells) and optionally
   ``OTF`` to configurations; those without an energy and forces are labelled with ``reference`` (a LAMMPS
   potential: a name such as ``WL.meam``, a path, a :class:`labelling.reference.ReferencePotential`) by
   :func:`mlip.validation.label_configurations`. A reference in the SNAP family is refused (ValueError naming
   ``reference``) unless ``params.allow_same_family``: a SNAP reproduces a SNAP teacher exactly.
2. Each dataset is split once (seeded, ``params.test_fraction``) into a train and a test part; a combination's
   training set is the union of its datasets' train parts (B, B+C, B+P, B+P+OTF: those whose datasets are
   given) and its test set the union of their test parts, so B's cells are the same in every combination.
3. One SNAP per combination and kind (linear / quadratic) with the same :class:`schemas.training.SnapTrainingParams`
   and seeds (``mlip.train_snap``; ridge 'auto' picks the ridge on a held-out part of the training set only).
4. One validation suite (:func:`mlip.validation.build_suite` with the sampling potential, labelled once by the
   reference), every model validated on it (:func:`mlip.validation.validate`).
5. The report: sizes, train/test RMSE, per scenario errors over all and defect atoms, and the ratios of the
   defect-atom force RMSE B+P/B, B+C/B (and B+P+OTF/B) per scenario with their mean.

:func:`write_study_json` writes it (absolute paths of the reference files, model files and the labelled suite,
and the LAMMPS lines that evaluate each); :func:`study_table` prints it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from schemas.study import DATASETS, FIG6_SCENARIOS, StudyModel, StudyParams, StudyRatio, StudyReport
from schemas.validation import suite_params

__all__ = ["COMBINATIONS", "build_study_suite", "combinations_of", "defect_force_ratios", "has_labels",
           "read_study_json", "run_study", "study_suite_params", "study_table", "train_and_validate",
           "write_study_json"]

# (name, datasets) in report order; a combination runs when all its datasets are given
COMBINATIONS = (("B", ("B",)), ("B+C", ("B", "C")), ("B+P", ("B", "P")), ("B+P+OTF", ("B", "P", "OTF")))
_MODEL_FAMILY = "snap"


def has_labels(atoms: Atoms) -> bool:
    """Whether ``atoms`` carries an energy and forces (a single-point or any calculator's results)."""
    calc = atoms.calc
    if calc is None:
        return False
    results = getattr(calc, "results", {}) or {}
    return "energy" in results and "forces" in results


def combinations_of(datasets: Mapping[str, Collection[Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """The combinations whose datasets are all given (non-empty)."""
    present = {k for k, v in datasets.items() if v}
    return [(name, parts) for name, parts in COMBINATIONS if set(parts) <= present]


def _resolve(reference: Any, element: str, allow_same_family: bool):
    from labelling.reference import ReferencePotential, reference_in_model_family, resolve_reference

    try:
        resolved = reference if isinstance(reference, ReferencePotential) else resolve_reference(
            reference, element, field="reference")
    except ValueError as error:
        raise ValueError(f"reference: {error}".replace("reference: reference: ", "reference: ")) from None
    if element not in resolved.elements:
        raise ValueError(f"reference: {resolved.name} describes {', '.join(resolved.elements)}, not {element}")
    if reference_in_model_family(resolved, _MODEL_FAMILY) and not allow_same_family:
        raise ValueError(f"reference: {resolved.name} ({resolved.pair_style}) is in the SNAP family of the "
                         "study's models: a SNAP can reproduce a SNAP teacher exactly, so the errors would not "
                         "measure transfer (DESIGN.md section 5); choose one outside it (e.g. WL.meam) or set "
                         "allow_same_family")
    return resolved


def _boxed(atoms: Atoms) -> Atoms:
    """A copy LAMMPS can label: a non-periodic cluster without a 3D cell gets a 10 A vacuum box (still
    non-periodic; energy and forces do not depend on it)."""
    if np.any(atoms.pbc) or abs(np.linalg.det(np.asarray(atoms.cell[:]))) > 1e-9:
        return atoms
    work = Atoms(numbers=atoms.numbers, positions=atoms.positions, pbc=False)
    work.center(vacuum=10.0)
    return work


def _split(n: int, fraction: float, seed: int, key: str) -> tuple[list[int], list[int]]:
    """(train, test) indices of a dataset: floor(fraction * n) test configurations, seeded per dataset key."""
    n_test = math.floor(fraction * n + 1e-9)
    if n_test >= n:
        n_test = n - 1
    order = np.random.default_rng([int(seed), DATASETS.index(key) if key in DATASETS else 99]).permutation(n)
    test = sorted(int(i) for i in order[:n_test])
    return [i for i in range(n) if i not in set(test)], test


def _lines(model) -> list[str]:
    return [f"pair_style {model.pair_style}", *(f"pair_coeff {line}" for line in model.pair_coeff)]


def _sizes(images: Sequence[Atoms]) -> tuple[int, int]:
    return len(images), int(sum(len(a) for a in images))


def study_suite_params(params: StudyParams):
    """The validation suite parameters of a study (preset, seed and scenario overrides)."""
    overrides: dict[str, Any] = {}
    if params.suite_seed is not None:
        overrides["seed"] = params.suite_seed
    if params.scenarios is not None:
        overrides["scenarios"] = list(params.scenarios)
    return suite_params(params.suite, **overrides)


def build_study_suite(params: StudyParams, timings: dict[str, float] | None = None) -> tuple[dict[str, list[Atoms]],
                                                                                            float]:
    """The study's validation configurations per scenario (unlabelled, per-atom ``defect`` mask, built by MD with
    the sampling potential at its own lattice constant) and that lattice constant (A)."""
    from md.potentials import load_potential
    from sampling.properties import relax_lattice_constant

    from .validation import build_suite

    sampler = load_potential(params.sampling_potential)
    a, _ = relax_lattice_constant(sampler, params.element, params.lattice)
    return build_suite(study_suite_params(params), sampler, params.element, params.lattice, a,
                       timings=timings), float(a)


def run_study(datasets: Mapping[str, Sequence[Atoms]], reference: Any, params: StudyParams | Mapping | None = None,
              workdir: str | os.PathLike = "study", write_suite: bool = True) -> StudyReport:
    """Label, train one SNAP per dataset combination and kind, validate all on one suite; see the module doc.

    ``workdir`` receives the models (``<combination>-<kind>.snapcoeff`` ...) and, with ``write_suite``, the
    labelled suite ``suite.extxyz`` (per-atom ``defect`` mask, ``info['scenario']``)."""
    from .validation import label_configurations

    started_all = time.perf_counter()
    params = params if isinstance(params, StudyParams) else StudyParams.model_validate(dict(params or {}))
    _check_datasets(datasets, params.element)
    resolved = _resolve(reference, params.element, params.allow_same_family)
    notes: list[str] = []
    reference_in_family = params.allow_same_family and _in_family(resolved)
    if reference_in_family:
        notes.append(f"WARNING: reference {resolved.name} is in the SNAP family (allowed explicitly)")
    timings: dict[str, float] = {}
    teacher = resolved.potential()

    # 1. labels
    started = time.perf_counter()
    data: dict[str, list[Atoms]] = {}
    labelled_here: dict[str, int] = {}
    for key in DATASETS:
        images = [a for a in (datasets.get(key) or [])]
        if not images:
            continue
        missing = [i for i, a in enumerate(images) if not has_labels(a)]
        if missing:
            labelled = label_configurations({key: [_boxed(images[i]) for i in missing]}, teacher,
                                            name=resolved.name)[key]
            images = list(images)
            for i, atoms in zip(missing, labelled):
                copy = images[i].copy()  # the caller's positions and cell (a cluster may have none)
                copy.calc = SinglePointCalculator(copy, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
                copy.info["reference"] = resolved.name
                images[i] = copy
        data[key] = images
        labelled_here[key] = len(missing)
    timings["label datasets"] = time.perf_counter() - started

    # 2. the suite, built and labelled once
    started = time.perf_counter()
    configs, a = build_study_suite(params)
    timings["build suite"] = time.perf_counter() - started
    started = time.perf_counter()
    labelled_suite = label_configurations(configs, teacher, name=resolved.name)
    timings["label suite"] = time.perf_counter() - started

    report = train_and_validate(data, labelled_suite, params, workdir, reference=resolved.name,
                                reference_lammps=resolved.lammps_lines(), lattice_constant=a,
                                write_suite=write_suite, notes=notes, timings=timings, reference_potential=teacher)
    for name, count in labelled_here.items():
        report.datasets[name]["labelled_here"] = count
    report.reference_family_allowed = bool(reference_in_family)
    report.timings["total"] = time.perf_counter() - started_all
    return report


def _check_datasets(datasets: Mapping[str, Sequence[Atoms]], element: str) -> None:
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"datasets: unknown key {unknown[0]!r}; use {', '.join(DATASETS)}")
    if not datasets.get("B"):
        raise ValueError("datasets: 'B' (the basic dataset) is needed: every combination contains it")
    for key, images in datasets.items():
        foreign = sorted({s for a in images or [] for s in a.get_chemical_symbols()} - {element})
        if foreign:
            raise ValueError(f"datasets: {key} has {', '.join(foreign)}; the study is of {element}")


def train_and_validate(data: Mapping[str, Sequence[Atoms]], labelled_suite: Mapping[str, Sequence[Atoms]],
                       params: StudyParams, workdir: str | os.PathLike, reference: str,
                       reference_lammps: Sequence[str] = (), lattice_constant: float = 0.0, write_suite: bool = True,
                       notes: Sequence[str] = (), timings: Mapping[str, float] | None = None,
                       reference_potential: Any = None) -> StudyReport:
    """Steps 2-5 of the study on labelled data: split each dataset, train one SNAP per combination and kind,
    validate each on ``labelled_suite`` (scenario -> labelled configurations with a ``defect`` mask), ratios.
    With ``params.properties`` and a ``reference_potential`` (a LAMMPS Potential), every model's defect
    properties are compared with the reference's.

    A campaign's ``validation`` stage calls this with its ledger labels (``reference``: what labelled them)."""
    from selection.grading import training_active_set

    from .snap import train_snap
    from .validation import defect_properties, validate

    started_all = time.perf_counter()
    _check_datasets(data, params.element)
    unlabelled = [key for key, images in data.items() for a in images if not has_labels(a)]
    if unlabelled:
        raise ValueError(f"datasets: {unlabelled[0]} has configurations without energy and forces")
    for scenario, images in labelled_suite.items():
        if not images or not all(has_labels(a) for a in images):
            raise ValueError(f"suite: scenario {scenario!r} has no configuration, or one without labels")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    timings = dict(timings or {})
    sizes: dict[str, dict[str, int]] = {}
    parts: dict[str, tuple[list[Atoms], list[Atoms]]] = {}
    for key in DATASETS:
        images = list(data.get(key) or [])
        if not images:
            continue
        train_idx, test_idx = _split(len(images), params.test_fraction, params.split_seed, key)
        parts[key] = ([images[i] for i in train_idx], [images[i] for i in test_idx])
        n, atoms_n = _sizes(images)
        sizes[key] = {"configurations": n, "atoms": atoms_n, "labelled_here": 0,
                      "train_configurations": len(train_idx), "test_configurations": len(test_idx)}
    suite = study_suite_params(params)
    suite_path = None
    if write_suite:
        from ase.io import write

        suite_path = workdir / "suite.extxyz"
        flat = []
        for scenario, images in labelled_suite.items():
            for atoms in images:
                atoms.info["scenario"] = scenario
                flat.append(atoms)
        write(suite_path, flat, format="extxyz")
    suite_sizes = {s: {"configurations": len(v), "atoms": int(sum(len(x) for x in v)),
                       "defect_atoms": int(sum(int(np.asarray(x.arrays.get("defect", [])).sum()) for x in v))}
                   for s, v in labelled_suite.items()}

    notes = list(notes)
    reference_properties = None
    if params.properties:
        if reference_potential is None:
            notes.append("properties: the reference is not a LAMMPS potential; not computed")
        else:
            started = time.perf_counter()
            reference_properties = defect_properties(reference_potential, params.element, params.lattice,
                                                     suite.properties)
            timings["properties reference"] = time.perf_counter() - started
    basis = _gamma_basis(params)
    models: list[StudyModel] = []
    for combination, keys in combinations_of(parts):
        train = [a for k in keys for a in parts[k][0]]
        test = [a for k in keys for a in parts[k][1]]
        active_set = training_active_set(basis, train)  # gamma of the suite's atoms against this training set
        for kind in params.kinds:
            started = time.perf_counter()
            name = f"{combination.replace('+', '_')}-{kind}"
            snap_params = params.snap.model_copy(update={"quadratic": kind == "quadratic"})
            model = train_snap(train, workdir=workdir, params=snap_params, test=test or None,
                               species=[params.element], name=name, processes=params.processes)
            report = validate(model, labelled_suite, basis=basis, active_set=active_set, name=name)
            n_train, atoms_train = _sizes(train)
            n_test, atoms_test = _sizes(test)
            keep = ("energy_mev_per_atom", "forces_mev_per_A", "forces_norm_mev_per_A")
            train_errors, test_errors = model.rmse["train"], model.rmse.get("test")
            assert train_errors is not None  # train_snap measures the training set always
            models.append(StudyModel(
                combination=combination, kind=kind, name=name, model_path=str(Path(model.path).resolve()),
                param_path=str(model.param_file.resolve()),
                record_path=str(Path(str(model.path) + ".json").resolve()), lammps=_lines(model),
                n_train_configurations=n_train, n_train_atoms=atoms_train, n_test_configurations=n_test,
                n_test_atoms=atoms_test, ridge=float(model.settings["ridge_used"]),
                train_rmse={k: float(train_errors[k]) for k in keep if k in train_errors},
                test_rmse=None if not test_errors else {k: float(test_errors[k]) for k in keep if k in test_errors},
                energy_offset_mev_per_atom=report.energy_offset_mev_per_atom, scenarios=report.scenarios,
                wall_time_s=time.perf_counter() - started))
            if reference_properties is not None:
                models[-1].properties, models[-1].energy_volume = _model_properties(
                    model, params, suite.properties, reference_properties, notes)
                models[-1].wall_time_s = time.perf_counter() - started
            timings[f"model {name}"] = models[-1].wall_time_s

    ratios = defect_force_ratios(models, params.kinds)
    held_out_choice = {}
    for combination in dict.fromkeys(m.combination for m in models):
        tested = [m for m in models if m.combination == combination and m.test_rmse
                  and m.test_rmse.get("forces_mev_per_A") is not None]
        if len(tested) == len(params.kinds) > 1:
            held_out_choice[combination] = min(tested, key=lambda m: (m.test_rmse or {})["forces_mev_per_A"]).kind
    timings["train and validate"] = time.perf_counter() - started_all
    timings.setdefault("total", sum(v for k, v in timings.items() if not k.startswith("model ")))
    return StudyReport(
        element=params.element, lattice=params.lattice, reference=reference,
        reference_lammps=list(reference_lammps), reference_family_allowed=False,
        params=params, datasets=sizes, suite=suite.suite, suite_seed=int(suite.seed),
        suite_path=None if suite_path is None else str(suite_path), suite_sizes=suite_sizes,
        lattice_constant=float(lattice_constant), models=models, ratios=ratios, held_out_choice=held_out_choice,
        notes=list(notes), timings=timings)


def _model_properties(model, params: StudyParams, settings, reference: Mapping[str, Any], notes: list[str]):
    """A model's defect properties against the reference's (rows, E-V curves); a model LAMMPS fails on (e.g. atoms
    collapsing) gets model values None and a note, the study goes on."""
    from .validation import compare_properties, defect_properties

    try:
        values = defect_properties(model.files().potential(), params.element, params.lattice, settings,
                                   ev_constants=reference["ev_constants"])
    except Exception as error:  # LammpsError, the lammps module's bare ones: a note, not a failure
        notes.append(f"properties of {Path(model.path).stem}: not computed ({type(error).__name__}: "
                     f"{str(error)[:200]})")
        values = None
    return compare_properties(values, reference)


def defect_force_ratios(models: Sequence[StudyModel], kinds: Sequence[str]) -> list[StudyRatio]:
    """Per kind, the defect-atom force RMSE of B+P, B+C and B+P+OTF over B's, per scenario, with the mean over
    every scenario with a ratio and over the paper's five of Fig. 6 (None unless all five have one)."""
    ratios = []
    for kind in kinds:
        by_name = {m.combination: m for m in models if m.kind == kind}
        base = by_name.get("B")
        for numerator in ("B+P", "B+C", "B+P+OTF"):
            if base is None or numerator not in by_name:
                continue
            per: dict[str, float | None] = {}
            denominators = {s.scenario: s.force_rmse_defect_mev_per_A for s in base.scenarios}
            for s in by_name[numerator].scenarios:
                d, v = denominators.get(s.scenario), s.force_rmse_defect_mev_per_A
                per[s.scenario] = None if d is None or v is None or d == 0 else v / d
            values = [v for v in per.values() if v is not None]
            fig6 = [v for v in (per.get(name) for name in FIG6_SCENARIOS) if v is not None]
            ratios.append(StudyRatio(kind=kind, numerator=numerator, per_scenario=per,
                                     mean=float(np.mean(values)) if values else None,
                                     mean_fig6=None if len(fig6) < len(FIG6_SCENARIOS) else float(np.mean(fig6))))
    return ratios


def _gamma_basis(params: StudyParams):
    """The models' own linear bispectrum rows (their 2J, rcutfac, rfac0, rmin0, radius): MLIP-3's principle, the
    model's basis grades it. Quadratic models are graded in the same linear rows: their 55 + 1540 columns exceed the
    atoms of a small training set, so a MaxVol active set of them would not exist."""
    from selection.bases import SnapBasis

    snap = params.snap
    radius = (snap.radii or {}).get(params.element, 0.5)
    return SnapBasis(params.element, twojmax=snap.twojmax, rcutfac=snap.rcutfac, rfac0=snap.rfac0, rmin0=snap.rmin0,
                     radius=radius)


def _in_family(resolved) -> bool:
    from labelling.reference import reference_in_model_family

    return reference_in_model_family(resolved, _MODEL_FAMILY)


def write_study_json(report: StudyReport, path: str | os.PathLike) -> Path:
    """``study.json``: the report (every number, absolute paths, LAMMPS lines); returns its path."""
    path = Path(path)
    if path.is_dir():
        path = path / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    return path.resolve()


def read_study_json(path: str | os.PathLike) -> StudyReport:
    return StudyReport.model_validate_json(Path(path).read_text())


def study_table(report: StudyReport) -> str:
    """Plain-text tables: training sets and train/test RMSE, defect-atom force RMSE per scenario, ratios."""
    lines = [f"study {report.element} {report.lattice}: reference {report.reference}, suite {report.suite} "
             f"(seed {report.suite_seed}), a = {report.lattice_constant:.4f} A"]
    lines.append("datasets: " + ", ".join(f"{k} {v['configurations']} cells / {v['atoms']} atoms "
                                          f"({v['test_configurations']} test)" for k, v in report.datasets.items()))
    head = f"{'model':<22}{'train cfg':>10}{'atoms':>8}{'E train':>9}{'F train':>9}{'E test':>9}{'F test':>9}" \
           f"{'ridge':>9}"
    lines += ["", head, f"{'':<22}{'':>10}{'':>8}{'meV/at':>9}{'meV/A':>9}{'meV/at':>9}{'meV/A':>9}", "-" * len(head)]
    for m in report.models:
        t = m.test_rmse or {}
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(f"{m.combination + ' ' + m.kind:<22}{m.n_train_configurations:>10}{m.n_train_atoms:>8}"
                     f"{m.train_rmse['energy_mev_per_atom']:>9.2f}{m.train_rmse['forces_mev_per_A']:>9.1f}"
                     f"{fmt(t.get('energy_mev_per_atom')):>9}{fmt(t.get('forces_mev_per_A')):>9}{m.ridge:>9.0e}")
    scenarios = [s.scenario for s in report.models[0].scenarios] if report.models else []
    for quantity, title in (("force_rmse_defect_mev_per_A", "force RMSE, defect atoms (meV/A)"),
                            ("force_rmse_mev_per_A", "force RMSE, all atoms (meV/A)"),
                            ("energy_rmse_centred_mev_per_atom", "energy RMSE, offset removed (meV/atom)")):
        lines += ["", title, f"{'model':<22}" + "".join(f"{s:>15}" for s in scenarios)]
        rows = [(f"{m.combination} {m.kind}", m.scenarios) for m in report.models]
        if report.campaign_model is not None:
            rows.append((f"campaign {report.campaign_model.model}", report.campaign_model.scenarios))
        for label, errors in rows:
            values = {s.scenario: getattr(s, quantity) for s in errors}
            lines.append(f"{label:<22}" + "".join(
                f"{'-' if values.get(s) is None else format(values[s], '.1f'):>15}" for s in scenarios))
    if any(sc.gamma for m in report.models for sc in m.scenarios):
        lines += ["", "gamma_max of the suite's atoms against the training set (models' linear bispectrum basis)",
                  f"{'training set':<22}" + "".join(f"{s:>15}" for s in scenarios)]
        for m in report.models:
            if m.kind != report.models[0].kind:
                continue  # the same training set grades the same for every kind
            values = {sc.scenario: sc.gamma.gamma_max for sc in m.scenarios if sc.gamma}
            lines.append(f"{m.combination:<22}" + "".join(
                f"{'-' if s not in values else format(values[s], '.3g'):>15}" for s in scenarios))
    if report.ratios:
        lines += ["", "defect-atom force RMSE ratios (mean: over every scenario; Fig. 6: over the paper's five)",
                  f"{'ratio':<22}" + "".join(f"{s:>15}" for s in scenarios) + f"{'mean':>8}{'Fig. 6':>8}"]
        for r in report.ratios:
            cells = "".join(f"{'-' if r.per_scenario.get(s) is None else format(r.per_scenario[s], '.2f'):>15}"
                            for s in scenarios)
            lines.append(f"{r.numerator + '/' + r.denominator + ' ' + r.kind:<22}{cells}"
                         f"{'-' if r.mean is None else format(r.mean, '.2f'):>8}"
                         f"{'-' if r.mean_fig6 is None else format(r.mean_fig6, '.2f'):>8}")
    with_properties = [m for m in report.models if m.properties]
    if with_properties:
        names = [row.name for row in with_properties[0].properties]
        units = {row.name: row.unit for row in with_properties[0].properties}
        lines += ["", "defect properties: model (reference in the last row); E-V rmse: against the reference's curve",
                  f"{'model':<22}" + "".join(f"{name[:14]:>15}" for name in names),
                  f"{'':<22}" + "".join(f"{units[name][:14]:>15}" for name in names)]
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        for m in with_properties:
            values = {row.name: row.model for row in m.properties}
            lines.append(f"{m.combination + ' ' + m.kind:<22}" + "".join(f"{fmt(values.get(n)):>15}" for n in names))
        reference = {row.name: row.reference for row in with_properties[0].properties}
        lines.append(f"{'reference ' + report.reference:<22}" + "".join(
            f"{fmt(reference.get(n) if not n.startswith('E-V') else None):>15}" for n in names))
    if report.held_out_choice:
        lines += ["", "kind with the lower force RMSE on the held-out test part: " + ", ".join(
            f"{combination} {kind}" for combination, kind in report.held_out_choice.items())]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
