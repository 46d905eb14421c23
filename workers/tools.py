"""Stand-alone science commands behind `defect-genome grade` and `select`: files in, files out.

They run without a database or a broker, on the same functions the campaign stages use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from core.settings import get_settings
from sampling.datasets import read_dataset
from sampling.defects import classify_atoms, defect_mask
from schemas.campaign import SelectionParams
from selection.bases import Basis, Mlip3Basis, make_basis
from selection.clusters import cut_clusters, pad_vacuum
from selection.grading import gamma_summary, grade_atoms, select_environments, training_active_set

_SELECTION = SelectionParams.model_fields  # the defaults of the campaign's selection section


@dataclass(frozen=True)
class BasisOptions:
    name: str = _SELECTION["basis"].default
    potential: Path | None = None  # .mtp for mtp, .yaml for ace, .almtp for mlip3
    twojmax: int = _SELECTION["twojmax"].default
    cutoff: float = _SELECTION["snap_cutoff"].default  # SNAP pair cutoff, A
    threads: int = 1


def _species(configurations: Sequence[Atoms]) -> list[str]:
    return sorted({symbol for atoms in configurations for symbol in atoms.get_chemical_symbols()})


def _basis(options: BasisOptions, species: Sequence[str]) -> Basis:
    if options.name == "snap":
        return make_basis("snap", elements=species, twojmax=options.twojmax, cutoff=options.cutoff,
                          threads=options.threads)
    if options.potential is None:
        raise ValueError(f"--potential: the {options.name} basis needs its potential file (.mtp or .yaml)")
    if options.name == "mtp":
        return make_basis("mtp", mtp_file=options.potential, species=tuple(species))
    return make_basis(options.name, yaml=options.potential)


def _read_all(paths: Sequence[Path], species: Sequence[str] | None = None) -> list[Atoms]:
    configurations = []
    for path in paths:
        configurations.extend(read_dataset(path, species=species))
    return configurations


def _mlip3(options: BasisOptions, species: Sequence[str]) -> Mlip3Basis:
    binary = get_settings().mlp_binary
    if binary is None:
        raise ValueError("--basis mlip3: set DG_MLP_BINARY to the path of MLIP-3's `mlp` executable")
    if options.potential is None:
        raise ValueError("--potential: the mlip3 basis needs the .almtp potential with its active set")
    return Mlip3Basis(binary, options.potential, species)


def grade_files(options: BasisOptions, train: Path, inputs: Sequence[Path], out: Path) -> dict:
    """Per-atom gamma of every input configuration against the training set; writes extxyz."""
    training = read_dataset(train)
    species = _species(training)
    configurations = _read_all(inputs, species)
    if options.name == "mlip3":
        graded = _mlip3(options, species).calc_grade(training, configurations)
        gammas = [np.asarray(atoms.arrays["gamma"]) for atoms in graded]
    else:
        basis = _basis(options, species)
        active_set = training_active_set(basis, training)
        gammas = [grade_atoms(basis, active_set, atoms)[1] for atoms in configurations]
    for atoms, gamma in zip(configurations, gammas, strict=True):
        atoms.arrays["gamma"] = gamma
        atoms.info["gamma_max"] = float(gamma.max())
    ase.io.write(out, configurations, format="extxyz")
    return {"configurations": len(configurations), "out": str(out),
            **gamma_summary(np.concatenate(gammas) if gammas else np.zeros(0))}


def select_files(
    options: BasisOptions,
    train: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    lattice: str,
    gamma_select: float,
    max_new: int | None,
    radius: float,
    vacuum: float = 0.0,
    candidates: str,
) -> dict:
    """Select diverse high-gamma environments and write spherical clusters around them (extxyz).

    ``gamma_select``, ``max_new``, ``radius`` (cluster_radius) and ``candidates`` have no defaults here: the
    campaign's are those of ``schemas.campaign.SelectionParams`` (the CLI reads them from there).
    """
    if candidates not in ("defects", "all"):
        raise ValueError("--candidates: choose 'defects' (atoms not in the perfect lattice) or 'all'")
    training = read_dataset(train)
    species = _species(training)
    configurations = _read_all(inputs, species)
    masks = [
        defect_mask(classify_atoms(atoms, lattice=lattice), lattice) if candidates == "defects"
        else np.ones(len(atoms), bool)
        for atoms in configurations
    ]
    if options.name == "mlip3":
        raise ValueError("--basis mlip3: MLIP-3 selects whole configurations; use `grade` with it, "
                         "or choose snap, mtp or ace for per-atom selection")
    basis = _basis(options, species)
    active_set = training_active_set(basis, training)
    graded = [grade_atoms(basis, active_set, atoms) for atoms in configurations]
    selection = select_environments(
        active_set, [r for r, _ in graded], [g for _, g in graded], masks, gamma_select=gamma_select, max_new=max_new
    )
    clusters: list[Atoms] = []
    for k, atoms in enumerate(configurations):
        centres = [atom for config, atom in selection.chosen if config == k]
        if not centres:
            continue
        atoms.arrays["gamma"] = graded[k][1]
        source = str(atoms.info.get("source", f"{inputs[0].name}#{k}"))
        for cluster in cut_clusters(atoms, centres, radius=radius, source=source):
            result = pad_vacuum(cluster.atoms, vacuum) if vacuum > 0 else cluster.atoms
            result.info.update(source=source, centres=",".join(map(str, cluster.centre_indices)))
            clusters.append(result)
    ase.io.write(out, clusters, format="extxyz")
    return {
        "configurations": len(configurations),
        "candidates": int(sum(m.sum() for m in masks)),
        "selected": len(selection.chosen),
        "clusters": len(clusters),
        "cluster_atoms": [len(c) for c in clusters],
        "out": str(out),
    }
