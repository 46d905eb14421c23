"""Helpers shared by the service tests."""

from __future__ import annotations

import os
import shutil
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
POSTGRES_URL = os.environ.get("DG_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DG_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from core.session import engine_for

    with engine_for(url).begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))


def write_bulk_training_set(path, n_rattled: int = 3):
    """Dataset B of perfect bcc W (128 atoms) and rattled copies (0.05 A), as extxyz."""
    import ase.io
    from ase.build import bulk

    perfect = bulk("W", "bcc", a=3.165, cubic=True).repeat((4, 4, 4))
    training = [perfect]
    for seed in range(n_rattled):
        rattled = perfect.copy()
        rattled.rattle(0.05, seed=seed)
        training.append(rattled)
    ase.io.write(path, training)
    return perfect


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")



def wait_for_campaign(campaign_id: int, timeout: float, interval: float = 0.2, what: str | None = None):
    """The campaign once it has finished (any final status), re-read from the database until ``timeout`` s."""
    from core.models import Campaign
    from core.session import session_scope

    def finished():
        with session_scope() as session:
            campaign = session.get(Campaign, campaign_id)
            return campaign if campaign.status.finished else None

    return wait_for(finished, timeout, interval=interval, what=what or f"campaign {campaign_id}")

# A campaign small enough for the default suite: 2 protocols x 3 snapshots of 250-atom W
# (5 cells = 15.8 A, just above twice the 7.89 A cutoff of EAM-Zhou W).
TINY_SPEC = {
    "name": "tiny-w",
    "element": "W",
    "lattice": "bcc",
    "lattice_constant": 3.165,
    "potential": "W_zhou.eam.alloy",
    "stop_after": "sampling",  # the service tests; tests of later stages drop this
    "sampling": {
        "protocols": [
            {"kind": "anneal", "name": "bulk", "structure": {"kind": "bulk", "supercell": [5, 5, 5]},
             "temperatures": [300], "steps_per_temperature": 200, "snapshot_every": 100},
            {"kind": "anneal", "name": "vacancy",
             "structure": {"kind": "bulk", "supercell": [5, 5, 5], "vacancies": 1, "seed": 3},
             "temperatures": [300], "steps_per_temperature": 200, "snapshot_every": 100, "seed": 3},
        ]
    },
}


def open_page(playwright):
    """Headless Chromium (software GL, as on CI) with one 1280 x 900 page: (browser, page, the page's errors)."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return browser, page, errors


# an Al PBE norm-conserving pseudopotential made by Quantum ESPRESSO's ld1.x (Al.pbe-tm-dg.UPF) in the tests
AL_LD1_INPUT = """ &input
    title='Al', zed=13.0, rel=0, config='[Ne] 3s2 3p1', iswitch=3, dft='PBE'
 /
 &inputp
    pseudotype=1, file_pseudopw='Al.pbe-tm-dg.UPF', author='defect-genome test', lloc=1, tm=.true.
 /
2
3S  1  0  2.00  0.00  2.20  2.20  0.0
3P  2  1  1.00  0.00  2.20  2.20  0.0
"""
