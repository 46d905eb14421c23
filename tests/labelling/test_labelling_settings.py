"""Settings, profiles, hashes, k-point grids, failure classes and the retry policy."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from pydantic import ValidationError

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
    with pytest.raises(ValueError, match=r"labelling\.engine"):
        DFTSettings(engine="castep")
    with pytest.raises(ValueError, match="unknown DFT settings"):
        DFTSettings.from_dict({"encut": 400})


# The ledger's keys: settings_hash of settings built before DFTSettings became a pydantic model. A change here
# recomputes every stored DFT label, so these numbers must never change.
PINNED_HASHES = {
    ("production", "gpaw"): "426a32e32cab48d810d26c67b42d1a44d38f5d69c4d68f7e552db41d6c3b3cac",
    ("quick", "gpaw"): "e9df4f1e7cae4ca09ffcb8d9c7729db217188bccebc2f5d097dd8601276e3743",
    ("production", "vasp"): "000a66b1fac5e0c695088fc803cef0dd36897ce89fb8287e860eef468ac2af67",
    ("quick", "vasp"): "f87e8d00f4cbeebc5f69d64da511a9010a8771b1f7095c0e7f5ba1e994374812",
    ("production", "espresso"): "952eb2af46ee2635f68cc6a5d40b568478c3e2c9254a2ceba4bd224ad7dbd570",
    ("quick", "espresso"): "4baae2460a999717b7c0464aa2bf72de4fa6b98c03970f515ab5522b75d76ff5",
    ("quick", "eam"): "edf8f01dbd586a48040a36f7406bf6e2001d423a5e6b1cfcbb20396a6e3ebe54",
}


def test_settings_hashes_of_stored_labels_do_not_change():
    for (name, engine), expected in PINNED_HASHES.items():
        assert settings_hash(profile(name, engine)) == expected, (name, engine)
    # an integer stays an integer (the hash writes 350, not 350.0), as the ledger rows were written
    ints = quick("gpaw", ecut=350, sigma=0, scf_energy_tol=1e-5)
    assert settings_hash(ints) == "46c9390dd8249d1bab1f2795e053bac384dbb03bf7c738e864f6a382a5d2e0b1"
    assert '"ecut": 350, ' in json.dumps(ints.to_dict()) and type(ints.sigma) is int
    vasp = production("vasp", engine_options={"potcar": {"W": "W_pv"}}, command=("mpirun", "-np", 64, "vasp_std"),
                      pseudo_dir="/opt/potcars", walltime="12:00:00")
    assert settings_hash(vasp) == "cb8404b08543b49b246079f3aa157eb9c86ded2e530727e4ad1df9086d29decf"
    assert vasp.to_dict()["command"] == ["mpirun", "-np", "64", "vasp_std"]
    assert DFTSettings.from_dict(json.loads(json.dumps(ints.to_dict()))).to_dict() == ints.to_dict()


@pytest.mark.parametrize(("changes", "field"), [
    ({"ecut": 0}, "ecut"), ({"ecut": -520.0}, "ecut"), ({"kspacing": 0.0}, "kspacing"), ({"sigma": -0.1}, "sigma"),
    ({"sigma": float("nan")}, "sigma"), ({"scf_energy_tol": 0}, "scf_energy_tol"), ({"kpts": (4, 0, 4)}, "kpts"),
    ({"kpts": (4, 4)}, "kpts"), ({"kpts": (4.5, 4, 4)}, "kpts"), ({"smearing": "cold"}, "smearing"),
    ({"mixing_beta": 1.5}, "mixing_beta"), ({"max_scf_steps": 0}, "max_scf_steps"),
    ({"walltime": "two hours"}, "walltime"), ({"command": "vasp_std"}, "command"), ({"encut": 400}, "encut"),
])
def test_invalid_settings_name_the_field(changes, field):
    for make in (lambda: DFTSettings(**changes), lambda: quick("vasp", **changes),
                 lambda: production("gpaw").replace(**changes)):
        with pytest.raises(ValidationError) as error:
            make()
        assert [e["loc"][0] for e in error.value.errors()] == [field], error.value


def test_settings_are_a_frozen_model_with_documented_fields():
    s = quick("gpaw", kpts=[3, 3, 3])
    assert s.kpts == (3, 3, 3) and s.replace(ecut=400.0).ecut == 400.0 and s.ecut == 300.0
    with pytest.raises(ValidationError):
        s.ecut = 400.0  # type: ignore[misc]
    for name in ("ecut", "sigma", "scf_energy_tol"):
        assert "eV" in (DFTSettings.model_fields[name].description or ""), name
    assert "2*pi" in (DFTSettings.model_fields["kspacing"].description or "")
    assert next_settings(production("vasp", walltime="1-00:00:00"), "walltime", 1).walltime == "48:00:00"


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
    node = ("slurmstepd: error: *** JOB 1235 ON node018 CANCELLED AT 2025-03-02T11:20:03 DUE TO NODE FAILURE, "
            "SEE SLURMCTLD LOG FOR DETAILS ***\n")
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
