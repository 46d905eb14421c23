"""PCC-GCMC without long LAMMPS runs: parameters, grid, seeds, best-candidate rule, element check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from md.potentials import PotentialError
from pcc_gcmc import (
    AUTHORS_OFFSETS,
    CandidateResult,
    GCMCParams,
    NoAdmissibleCandidateError,
    assemble,
    candidate_boxes,
    default_core_mask,
    plan,
    prepare_payload,
    select_best,
    time_breakdown,
)
from selection.clusters import cut_clusters


@pytest.fixture(scope="module")
def w_cluster():
    crystal = bulk("W", "bcc", 3.1648, cubic=True).repeat((8, 8, 8))
    return cut_clusters(crystal, [0], 8.0)[0]


def test_defaults_are_the_authors_protocol():
    p = GCMCParams()
    assert (p.temperature, p.mu, p.steps, p.timestep) == (100.0, 0.1, 2000, 0.001)
    assert (p.gcmc_every, p.exchanges, p.mc_moves, p.max_displacement) == (10, 10, 100, 0.1)
    assert (p.min_etol, p.min_ftol) == (1e-12, 1e-12)
    assert (p.core_radius, p.max_atoms, p.grid) == (5.0, 140, "authors")
    assert p.grid_offsets == AUTHORS_OFFSETS == (-1.0, -0.5, 0.0)
    assert GCMCParams(grid="wide").grid_offsets == tuple(float(d) for d in range(1, 11))


def test_params_round_trip_and_schema_compatibility():
    from schemas.campaign import ReconstructionParams

    p = GCMCParams(steps=300, offsets=(-0.5, 0.0), seed=4)
    data = p.to_dict()
    assert GCMCParams.from_dict(json.loads(json.dumps(data))) == p
    from_schema = GCMCParams.from_dict(ReconstructionParams())
    assert from_schema == GCMCParams()
    # the campaign's protocol "fast" (mc_moves None there: the fast variant's 10)
    assert GCMCParams.from_dict(ReconstructionParams(protocol="fast")) == GCMCParams.fast()
    assert (GCMCParams.from_dict({"protocol": "fast", "mc_moves": 100, "steps": 400})
            == GCMCParams.fast(mc_moves=100, steps=400))
    with pytest.raises(ValueError, match="protocol"):
        GCMCParams.from_dict({"protocol": "turbo"})
    with pytest.raises(ValueError, match="unknown PCC-GCMC parameters bogus"):
        GCMCParams.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="max_atoms"):
        GCMCParams(max_atoms=1)
    with pytest.raises(ValueError, match="grid"):
        GCMCParams(grid="coarse")
    with pytest.raises(ValueError, match="core_wall: must be one of retry, always, never"):
        GCMCParams(core_wall="sometimes")
    with pytest.raises(ValueError, match=r"wall_width: must be > 0 .*core_wall 'never'"):
        GCMCParams(wall_width=0.0)


def test_core_is_the_5A_sphere_of_the_centre(w_cluster):
    core = default_core_mask(w_cluster)
    assert core.sum() == 27  # bcc: 1 + 8 + 6 + 12 neighbours within 5 A
    centre = np.flatnonzero(w_cluster.atoms.arrays["centre"])[0]
    assert core[centre]


def test_authors_grid_and_distinct_reproducible_seeds(w_cluster):
    params = GCMCParams(seed=11)
    _payload, grid, base = plan(w_cluster, None, "W_zhou.eam.alloy", params)
    assert base == 11 and len(grid) == 27 and all(g["run"] for g in grid)
    boxes = np.array([g["box"] for g in grid])
    start = boxes.max(axis=0)
    assert np.allclose(np.unique(np.round(boxes[:, 0] - start[0], 9)), [-1.0, -0.5, 0.0])
    # the starting box holds about max_atoms atoms at the cluster's density (140 W: ~13 A)
    assert 12.5 < start[0] < 13.6
    seeds = [g["seed"] for g in grid]
    assert len(set(seeds)) == 27  # the authors used one seed for every box
    assert all(1 <= s < 2**31 for s in seeds)
    _, again, _ = plan(w_cluster, None, "W_zhou.eam.alloy", params)
    assert [g["seed"] for g in again] == seeds
    _, other, _ = plan(w_cluster, None, "W_zhou.eam.alloy", params.replace(seed=12))
    assert [g["seed"] for g in other] != seeds
    # without a seed: derived from the cluster, still reproducible
    _, default1, b1 = plan(w_cluster, None, "W_zhou.eam.alloy", GCMCParams())
    _, default2, b2 = plan(w_cluster, None, "W_zhou.eam.alloy", GCMCParams())
    assert b1 == b2 and [g["seed"] for g in default1] == [g["seed"] for g in default2]


def test_wide_grid_skips_boxes_over_the_cap(w_cluster):
    payload = prepare_payload(w_cluster, None, "W_zhou.eam.alloy")
    grid = candidate_boxes(payload, GCMCParams(grid="wide"))
    assert len(grid) == 1000
    run = [g for g in grid if g["run"]]
    assert 0 < len(run) < 1000
    extent = np.array(payload["core_extent"])
    for g in run:
        assert np.prod(g["box"]) * payload["density"] <= 1.15 * 140 + 1e-9
        assert np.all(np.array(g["box"]) >= extent + 1.0 - 1e-9)
    assert all("max_atoms" in g["reason"] or "core" in g["reason"] for g in grid if not g["run"])


def test_element_is_checked(w_cluster):
    iron = w_cluster.atoms.copy()
    iron.set_chemical_symbols(["Fe"] * len(iron))
    with pytest.raises(PotentialError, match="not Fe"):
        prepare_payload(iron, None, "W_zhou.eam.alloy")
    with pytest.raises(PotentialError, match="not Mo"):
        prepare_payload(w_cluster, None, "W_zhou.eam.alloy", GCMCParams(element="Mo"))


def _candidate(energy, n_atoms, status="ok", exact=True):
    return CandidateResult(box=[13.0] * 3, seed=1, status=status, energy_per_atom=energy, n_atoms=n_atoms,
                           admissible=n_atoms <= 140, centre_environment_exact=exact)


def test_only_admissible_candidates_become_the_best():
    # the authors' running minimum took the 150-atom box; here the cap is max_atoms = 140
    candidates = [_candidate(-8.70, 130), _candidate(-8.80, 150), _candidate(-8.75, 140),
                  _candidate(-8.90, 120, status="failed"), _candidate(-8.95, 125, exact=False)]
    assert select_best(candidates, 140) == 2
    assert select_best(candidates, 150) == 1
    assert select_best(candidates[1:2], 140) is None


def test_assemble_reports_no_admissible_candidate(w_cluster):
    payload, grid, base = plan(w_cluster, None, "W_zhou.eam.alloy", GCMCParams(offsets=(0.0,), seed=1))
    with pytest.raises(NoAdmissibleCandidateError) as caught:
        assemble(payload, grid, [_candidate(-8.8, 150)], GCMCParams(offsets=(0.0,)), base)
    assert len(caught.value.candidates) == 1 and caught.value.candidates[0].index == 0


# --------------------------------------------------------------------------- speed-up options (issue 5)


def test_speed_up_options_default_to_the_authors_protocol_and_validate():
    p = GCMCParams()
    assert (p.check_every, p.early_stop, p.stop_over_cap, p.prune) == (None, False, False, None)
    assert p.gcmc_chunk is None and p.prune_factor is None  # one run of `steps`, every box of the grid
    assert GCMCParams(grid="wide").prune_factor == 1.15
    fast = GCMCParams.fast()
    assert fast.early_stop and fast.stop_over_cap and fast.gcmc_chunk == 100
    assert ((fast.steps, fast.exchanges, fast.temperature, fast.mu, fast.min_ftol)
            == (p.steps, p.exchanges, p.temperature, p.mu, p.min_ftol))
    assert fast.mc_moves == 10 and fast.plateau_steps == 500 and GCMCParams.fast(steps=300).plateau_steps == 75
    assert GCMCParams.from_dict(json.loads(json.dumps(fast.to_dict()))) == fast
    assert GCMCParams(early_stop=True).gcmc_chunk == 100 and GCMCParams(check_every=30).gcmc_chunk == 30
    for bad in ({"check_every": 0}, {"plateau_steps": 0}, {"min_steps": -1}, {"prune": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GCMCParams(**bad)


def test_prune_skips_boxes_of_the_authors_grid_expected_over_the_cap(w_cluster):
    payload = prepare_payload(w_cluster, None, "W_zhou.eam.alloy")
    # a margin that makes the largest boxes hold more than max_atoms at the cluster's density
    params = GCMCParams(margin=7.0)
    assert all(g["run"] for g in candidate_boxes(payload, params))
    grid = candidate_boxes(payload, params.replace(prune=1.0))
    expected = [np.prod(g["box"]) * payload["density"] for g in grid]
    assert [g["run"] for g in grid] == [e <= 140 for e in expected]
    assert 0 < sum(g["run"] for g in grid) < 27
    assert all("max_atoms" in g["reason"] for g in grid if not g["run"])


def test_candidate_rows_without_the_timing_fields_still_load():
    old = {"box": [13.0, 13.0, 13.0], "seed": 3, "status": "ok", "n_atoms": 128, "energy_per_atom": -8.76,
           "admissible": True, "time_s": 40.0}  # a row written before the time breakdown existed
    row = CandidateResult.from_dict(old)
    assert ((row.time_gcmc_s, row.time_minimize_s, row.steps_run, row.stop_reason, row.gcmc_trace)
            == (0.0, 0.0, 0, "", None))
    assert CandidateResult.from_dict(json.loads(json.dumps(row.to_dict(structure=True)))) == row


def test_time_breakdown_sums_and_fractions():
    rows = [CandidateResult(box=[13.0] * 3, seed=1, time_s=10.0, time_setup_s=1.0, time_gcmc_s=8.0,
                            time_minimize_s=0.5, cpu_s=9.0, steps_run=2000),
            CandidateResult(box=[13.0] * 3, seed=2, time_s=6.0, time_setup_s=1.0, time_gcmc_s=4.5,
                            time_minimize_s=0.25, cpu_s=5.0, steps_run=1000).to_dict(),
            CandidateResult(box=[13.0] * 3, seed=3, status="skipped")]
    t = time_breakdown(rows, wall_time_s=10.0, workers=2)
    json.dumps(t)
    assert t["n_run"] == 2 and t["steps_run"] == 3000
    assert t["candidates_s"] == pytest.approx(16.0) and t["gcmc_s"] == pytest.approx(12.5)
    assert t["bookkeeping_s"] == pytest.approx(16.0 - 2.0 - 12.5 - 0.75)
    assert t["overhead_s"] == pytest.approx(4.0)  # 2 processes x 10 s wall - 16 s of candidates
    assert sum(t[k] for k in ("setup_fraction", "gcmc_fraction", "minimize_fraction", "bookkeeping_fraction",
                              "overhead_fraction")) == pytest.approx(1.0)
