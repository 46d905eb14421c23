"""The protocols' minimisations have settings (tolerances, caps) and report their progress (issue 19)."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
from support import TINY_SPEC

import sampling.protocols as protocols
from sampling.builders import bulk_crystal
from sampling.lammps_script import run_external, run_progress
from sampling.protocols import execute, program_for
from schemas import SpecError, parse_spec
from schemas.sampling import MinimizationParams, UniaxialProtocol

W = dict(element="W", lattice="bcc", lattice_constant=3.165)
LMP = str(Path(sys.prefix) / "bin" / "lmp")


def _rattled(size: int = 8):
    atoms = bulk_crystal("W", "bcc", 3.165, (size, size, size))
    atoms.rattle(0.15, seed=4)
    return atoms


def test_every_minimize_command_takes_the_campaign_settings(w_zhou):
    settings = MinimizationParams(force_tolerance=1e-3, max_iterations=7, max_evaluations=70)
    program = program_for(UniaxialProtocol(), _rattled(4), w_zhou, minimization=settings, **W)
    minimizations = [item for item in program.commands if item.startswith("minimize")]
    assert minimizations == ["minimize 0.0 0.001 7 70"] * 2  # box relaxed, then positions at that box
    default = program_for(UniaxialProtocol(), _rattled(4), w_zhou, **W)
    assert [item for item in default.commands if item.startswith("minimize")] == ["minimize 0.0 0.0001 1000 10000"] * 2


def test_the_iteration_cap_is_what_lammps_does(w_zhou):
    atoms = _rattled(5)
    energies = {}
    for cap in (3, 1000):
        program = program_for("minimize", atoms, w_zhou, minimization=MinimizationParams(max_iterations=cap), **W)
        energies[cap] = next(iter(execute(program, w_zhou))).atoms.info["energy"] / len(atoms)
    # three CG iterations leave the 0.15 A rattle half relaxed; the converged crystal is at E_coh = -8.760 eV/atom
    assert energies[1000] == pytest.approx(-8.760, abs=2e-3)
    assert energies[3] > energies[1000] + 0.01


def test_a_long_minimisation_reports_its_iterations(w_zhou, monkeypatch):
    monkeypatch.setattr(protocols, "_PROGRESS_EVERY_S", 0.02)
    notes: list[str] = []
    settings = MinimizationParams(force_tolerance=1e-12, max_iterations=400, max_evaluations=4000)
    program = program_for("minimize", _rattled(10), w_zhou, minimization=settings, **W)
    list(execute(program, w_zhou, progress=notes.append))
    iterations = [int(re.fullmatch(r"minimising: iteration (\d+) of at most 400", note).group(1)) for note in notes]
    # the box-relaxed minimisation, then the one at fixed box: each counts its own iterations up from 0
    assert len(iterations) >= 2 and len(set(iterations)) >= 2, notes
    assert all(0 <= n <= 400 for n in iterations), notes


def test_an_external_run_reports_from_its_log(w_zhou, tmp_path):
    params = dict(temperatures=[300.0], steps_per_temperature=100, snapshot_every=50, **W)
    assert run_progress(tmp_path) is None  # nothing run yet
    list(run_external("anneal", _rattled(4), w_zhou, workdir=tmp_path, command=[LMP], **params))
    note = run_progress(tmp_path)
    assert note is not None and re.fullmatch(r"MD step 100, T = \d+ K, E = -[0-9.]+ eV", note), note
    # the minimisation prints a thermo line every 50 iterations, then MD every snapshot_every steps
    log = (tmp_path / "log.lammps").read_text()
    assert "thermo 50\nminimize" in log and "minimize 0.0 0.0001 1000 10000\nthermo 50" not in log


def test_bad_settings_name_the_field_and_bound_the_budget():
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["minimization"] = {"max_iterations": 0}
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    assert [error.field for error in caught.value.errors] == ["sampling.minimization.max_iterations"]
    spec["sampling"]["minimization"] = {"max_iterations": 10**6}
    spec["budget"] = {"max_md_atom_steps": 10**8}
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    (error,) = caught.value.errors
    # 250 atoms x (200 MD steps + 10^6 minimisation iterations) is over the campaign's budget
    assert error.field.startswith("budget.max_md_atom_steps") and "1,000,000 minimisation iterations" in \
        error.message, error
