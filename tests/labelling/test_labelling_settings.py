"""Settings, profiles, hashes, k-point grids, failure classes and the retry policy."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from labelling import (
    PAPER_KSPACING,
    DFTSettings,
    classify_failure,
    get_backend,
    kpoints_for,
    next_settings,
    production,
    profile,
    quick,
    settings_hash,
    structure_hash,
)
from labelling.result import RunOutcome

ROOT = Path(__file__).resolve().parents[2]


def test_profiles():
    p = production()
    assert (p.ecut, p.scf_energy_tol, p.smearing, p.sigma, p.production) == (520.0, 1e-6, "fermi-dirac", 0.1, True)
    assert p.kspacing == pytest.approx(2 * math.pi * 0.03)
    q = quick()
    assert q.ecut < p.ecut and not q.production


def test_kpoints_paper_density():
    w = bulk("W", "bcc", a=3.165, cubic=True)
    assert kpoints_for(w.cell, PAPER_KSPACING) == (11, 11, 11)  # 1/(3.165*0.03) = 10.53 -> 11
    assert kpoints_for((w * (2, 2, 2)).cell) == (6, 6, 6)
    assert kpoints_for(np.diag([13.2, 13.2, 14.0])) == (3, 3, 3)  # a PCC-GCMC box of the P set
    assert kpoints_for(np.eye(3) * 30.0, pbc=(False, False, False)) == (1, 1, 1)  # cluster: Gamma only
    from ase.calculators.calculator import kptdensity2monkhorstpack

    assert tuple(kptdensity2monkhorstpack(w, 1 / PAPER_KSPACING, even=False)) == (11, 11, 11)
    tri = bulk("W", "bcc", a=3.165)  # primitive bcc: |b| = sqrt(2)/a
    assert kpoints_for(tri.cell) == (15, 15, 15)
    assert production().kpoints(w) == (11, 11, 11) and quick(kpts=(4, 4, 4)).kpoints(w) == (4, 4, 4)


def test_settings_hash_stable_and_sensitive():
    h = settings_hash(production())
    assert h == settings_hash(production()) and len(h) == 64
    # the same in a fresh interpreter (no dict-order or float-repr dependence)
    code = "from labelling import settings_hash, production; print(settings_hash(production()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == h
    assert settings_hash(production(kspacing=2 * math.pi * 3 / 100)) == h  # same number computed differently
    for change in ({"ecut": 500.0}, {"sigma": 0.2}, {"kpts": (4, 4, 4)}, {"scf_energy_tol": 1e-5},
                   {"xc": "PBEsol"}, {"engine": "vasp"}, {"engine_options": {"potcar": {"W": "W_pv"}}}):
        assert settings_hash(production(**change)) != h, change
    # algorithm knobs and plumbing do not change the label's identity
    for change in ({"mixing_beta": 0.02}, {"max_scf_steps": 400}, {"command": ("srun", "vasp_std")},
                   {"pseudo_dir": "/x"}, {"walltime": "02:00:00"}, {"profile": "renamed"}):
        assert settings_hash(production(**change)) == h, change


def test_settings_round_trip_and_validation():
    s = quick("vasp", kpts=[3, 3, 3], command=["mpirun", "vasp_std"], engine_options={"potcar": {"W": "W_pv"}})
    assert DFTSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="labelling.engine"):
        DFTSettings(engine="castep")
    with pytest.raises(ValueError, match="unknown DFT settings"):
        DFTSettings.from_dict({"encut": 400})


def test_unknown_engine_and_profile_are_clear():
    """Every way of asking for an engine or profile we do not have names it and lists what exists."""
    known_engines = "gpaw, vasp, espresso, lammps, eam"
    for make in (lambda: DFTSettings(engine="castep"), lambda: profile("production", engine="castep"),
                 lambda: profile("quick", "castep"), lambda: DFTSettings.from_dict({"engine": "castep"})):
        with pytest.raises(ValueError, match=f"labelling.engine must be one of {known_engines}, not 'castep'"):
            make()
    with pytest.raises(ValueError, match=f"unknown labelling.engine 'castep'; known: {known_engines}"):
        get_backend("castep")
    with pytest.raises(ValueError, match="unknown labelling profile 'turbo'; known: production, quick"):
        profile("turbo", engine="vasp")
    assert profile("production", engine="vasp") == production("vasp")


def test_structure_hash():
    a = bulk("W", "bcc", a=3.165, cubic=True)
    b = a.copy()
    b.positions[0, 0] += 1e-8  # below the rounding
    assert structure_hash(a) == structure_hash(b)
    b.positions[0, 0] += 1e-3
    assert structure_hash(a) != structure_hash(b)


# --------------------------------------------------------------------------- failures


def test_classify_from_scheduler_state_and_texts(tmp_path):
    assert classify_failure(None, RunOutcome(None, "TIMEOUT")) == "walltime"
    assert classify_failure(None, RunOutcome(None, "NODE_FAIL")) == "node_failure"
    # slurmstepd's own lines in the job output (format of Slurm 22.05)
    walltime = "slurmstepd: error: *** JOB 1234 ON node017 CANCELLED AT 2025-03-02T11:20:03 DUE TO TIME LIMIT ***\n"
    node = "slurmstepd: error: *** JOB 1235 ON node018 CANCELLED AT 2025-03-02T11:20:03 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***\n"
    (tmp_path / "run.log").write_text(walltime)
    assert classify_failure(tmp_path, RunOutcome(15, "CANCELLED")) == "walltime"
    (tmp_path / "run.log").write_text(node)
    assert classify_failure(tmp_path, RunOutcome(1, "FAILED")) == "node_failure"
    (tmp_path / "run.log").write_text("Traceback ...\ngpaw.KohnShamConvergenceError: Did not converge!\n")
    assert classify_failure(tmp_path, RunOutcome(1, "FAILED"), engine="gpaw") == "scf_not_converged"
    (tmp_path / "run.log").write_text("")
    assert classify_failure(tmp_path, RunOutcome(0, "COMPLETED")) == "parse_error"
    assert classify_failure(tmp_path, RunOutcome(139, "FAILED")) == "unknown"


def test_retry_policy():
    s = production("gpaw", walltime="04:00:00")
    first = next_settings(s, "scf_not_converged", 1)
    assert first.mixing_beta == pytest.approx(0.025) and first.max_scf_steps == 666 and first.sigma == s.sigma
    assert settings_hash(first) == settings_hash(s)  # stronger mixing: same label
    second = next_settings(first, "scf_not_converged", 2)
    assert second.sigma == pytest.approx(0.2) and second.mixing_beta < first.mixing_beta
    assert settings_hash(second) != settings_hash(s)  # larger smearing: another label
    assert next_settings(second, "scf_not_converged", 3) is None

    assert next_settings(s, "node_failure", 1) == s and next_settings(s, "node_failure", 2) == s
    assert next_settings(s, "node_failure", 3) is None
    assert next_settings(s, "walltime", 1).walltime == "08:00:00"
    assert next_settings(s.replace(walltime=None), "walltime", 1) is None  # nothing to extend
    assert next_settings(s.replace(walltime="40:00:00"), "walltime", 1).walltime == "48:00:00"
    assert next_settings(s, "parse_error", 1) is None
    assert next_settings(quick("eam"), "scf_not_converged", 1) is None
    vasp = next_settings(production("vasp"), "scf_not_converged", 1)
    assert vasp.mixing_beta == pytest.approx(0.2) and vasp.max_scf_steps == 120
