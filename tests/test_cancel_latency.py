"""Cancelling a campaign stops its running LAMMPS within seconds, mid-run and mid-minimisation.

End to end on the embedded executor (SQLite and PostgreSQL): app.services.cancel_campaign marks the
campaign cancelled; the work item's lease heartbeat (workers/lease.py) sees it and creates the item's
stop file; a watcher thread of the LAMMPS system sees it and ends the run (lmp.force_timeout); the stage runner
turns that into Cancelled and the item ends. Measured: cancel -> the executor has finished the item.
"""

from __future__ import annotations

import logging
import re
import time

import pytest
from support import wait_for

from app.auth import get_or_create_user
from app.services import cancel_campaign, resume_campaign, submit_campaign
from core.models import Campaign, Status, WorkItem
from core.session import session_scope
from schemas import parse_spec
from workers.dispatch import in_process
from workers.lease import stop_file

CANCEL_LIMIT_S = 10.0
# Default settings: the heartbeat looks for a cancellation every second (workers.lease.CANCEL_POLL).


def _spec(name: str, protocol: dict) -> dict:
    return {"name": name, "element": "W", "lattice": "bcc", "lattice_constant": 3.165,
            "potential": "W_zhou.eam.alloy", "stop_after": "sampling", "sampling": {"protocols": [protocol]}}


# 2000 atoms, 4x10^6 MD steps (hours; the budget default allows 10^10 atom-steps)
LONG_MD = _spec("long-md", {"kind": "anneal", "name": "md", "structure": {"kind": "bulk", "supercell": [10, 10, 10]},
                            "temperatures": [300], "steps_per_temperature": 4_000_000,
                            "snapshot_every": 4_000_000})
# the starting minimisation of a big structure: a 31,580-atom polycrystal with its box relaxed (minutes)
BIG_MINIMISATION = _spec("big-minimisation", {"kind": "minimize", "name": "relax",
                                              "structure": {"kind": "polycrystal", "box": [80, 80, 80],
                                                            "n_grains": 8, "seed": 4}})


@pytest.fixture
def settled(env):
    """The default settings (lease timeout 60 s: the heartbeat still looks for a cancel every second)."""
    yield env
    in_process.wait(timeout=60)


def _cancel_while_running(spec: dict | int, caplog, seconds_running: float) -> tuple[float, str, int, int]:
    """Submit ``spec`` (or resume campaign ``spec``), let LAMMPS run for ``seconds_running``, cancel;
    (seconds to the item's end, its log line, item id, campaign id)."""
    with session_scope() as session:
        if isinstance(spec, int):
            campaign_id = spec
            resume_campaign(session, session.get(Campaign, campaign_id), dispatch=in_process.submit)
        else:
            campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), parse_spec(spec),
                                          dispatch=in_process.submit).id
    caplog.clear()

    def running_item():
        with session_scope() as session:
            item = session.query(WorkItem).filter_by(campaign_id=campaign_id).one_or_none()
            return item.id if item is not None and item.status == Status.running else None

    item_id = wait_for(running_item, 60, interval=0.05, what="the sampling item to run")
    time.sleep(seconds_running)
    assert not in_process.idle(), "the run ended by itself"
    with caplog.at_level(logging.INFO, logger="workers.stages.sampling"):
        cancelled_at = time.monotonic()
        with session_scope() as session:
            cancel_campaign(session, session.get(Campaign, campaign_id))
        assert in_process.wait(timeout=60), "the item did not end within 60 s of the cancel"
        elapsed = time.monotonic() - cancelled_at
    with session_scope() as session:
        item = session.get(WorkItem, item_id)
        assert item.status == Status.cancelled
        assert item.lease_owner is None
        assert session.get(Campaign, campaign_id).status == Status.cancelled
    assert stop_file(item_id).exists()  # made by the heartbeat; removed when the item is claimed again
    lines = [r.getMessage() for r in caplog.records if f"work item {item_id} " in r.getMessage()]
    assert len(lines) == 1, lines
    return elapsed, lines[0], item_id, campaign_id


def _halted_step(line: str) -> int:
    match = re.search(r"halted at step (\d+)", line)
    assert match, line
    return int(match.group(1))


def test_cancel_stops_a_long_md_run_within_seconds_and_resume_runs_it_again(settled, caplog):
    elapsed, line, item_id, campaign_id = _cancel_while_running(LONG_MD, caplog, seconds_running=4.0)
    print(f"cancel -> item ended: {elapsed:.2f} s; {line}")
    assert "'run " in line  # halted in the MD, not between commands or at a snapshot
    assert 0 < _halted_step(line) < 4_000_000
    assert elapsed < CANCEL_LIMIT_S
    # resumed, the item runs again (the claim removed the old stop file) and a second cancel stops it too
    elapsed, line, again, _ = _cancel_while_running(campaign_id, caplog, seconds_running=4.0)
    print(f"after resume, cancel -> item ended: {elapsed:.2f} s; {line}")
    assert again == item_id and "'run " in line and _halted_step(line) > 0
    assert elapsed < CANCEL_LIMIT_S


def test_cancel_stops_the_starting_minimisation_of_a_big_structure_within_seconds(settled, caplog):
    elapsed, line, _, _ = _cancel_while_running(BIG_MINIMISATION, caplog, seconds_running=5.0)
    print(f"cancel -> item ended: {elapsed:.2f} s; {line}")
    assert "'minimize " in line  # halted inside the minimisation
    assert _halted_step(line) > 0
    assert elapsed < CANCEL_LIMIT_S
