"""Exports for 3D-CNN surrogates from a campaign (issue 20): the GPAW labels' stored electron densities with their
2-point autocorrelations (`export --format density`) and voxel grids of the labelled cells (`--format voxel`).

The default suite runs each piece small: formats.voxel and formats.density on their own (tests/test_voxel.py,
tests/labelling/test_density.py: a 2-atom GPAW W label), and the voxel and density exports of an EAM-labelled
campaign through the API (tests/test_pipeline.py). This test runs a GPAW campaign end to end (slow: a few minutes).
"""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from support import TINY_SPEC, wait_for_campaign, write_bulk_training_set

from app.auth import get_or_create_user
from app.cli import main
from app.services import submit_campaign
from core.models import Structure
from core.session import session_scope
from schemas import parse_spec


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gpaw_campaign_densities_integrate_to_the_valence_electrons(env, tmp_path):
    write_bulk_training_set(tmp_path / "bulk.extxyz", n_rattled=4)  # perfect bulk: the vacancies are new
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {
        "name": "densities", "stop_after": None,
        "sampling": {"protocols": TINY_SPEC["sampling"]["protocols"][1:]},
        "selection": {"training_set": str(tmp_path / "bulk.extxyz"), "max_new": 1},
        "reconstruction": {"protocol": "fast", "core_radius": 3.2, "max_atoms": 40, "offsets": [-0.5]},
        "labelling": {"engine": "gpaw", "profile": "quick", "kpoint_density": 0.8, "save_density": True},
    })
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id
    campaign = wait_for_campaign(campaign_id, 1800)
    assert campaign.status.value == "succeeded", campaign.error
    with session_scope() as session:
        cells = {s.source: s.n_atoms for s in session.query(Structure).filter_by(campaign_id=campaign_id,
                                                                                 stage="periodic")}
    assert cells

    out = tmp_path / "densities.h5"
    result = CliRunner().invoke(main, ["export", str(campaign_id), "--format", "density", "--datasets", "P",
                                       "--out", str(out), "--density", "size=21", "--density", "wrap=true"])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as file:
        assert file.attrs["format"] == "defect-genome-densities-1" and int(file.attrs["count"]) == len(cells)
        for group in file["configurations"].values():
            density, cell = group["density"][()], group["voxel_vectors"][()]
            # the pseudo density of the 6-electron W setups: 6 valence electrons per atom
            electrons = float(density.sum() * abs(np.linalg.det(cell)))
            assert electrons == pytest.approx(6 * cells[group.attrs["source"]], abs=1e-3)
            assert group["autocorrelation"].shape == (21, 21, 21)
            # normalised as the lean-CNN work: the autocorrelation of sqrt(rho) at zero shift is the mean density
            assert group["autocorrelation"][10, 10, 10] == pytest.approx(density.mean(), rel=1e-9)
    result = CliRunner().invoke(main, ["export", str(campaign_id), "--format", "density", "--datasets", "P",
                                       "--out", str(tmp_path / "x.h5"), "--density", "voxel_width=0"])
    assert result.exit_code == 2 and "voxel_width" in result.output
