"""Work-item leases on both backends: the claim is a compare-and-set, only the holder finishes, a lapsed
lease is shown as stale and swept back into the queue, cancellation reaches the stop file."""

from __future__ import annotations

import copy
from datetime import timedelta

from support import TINY_SPEC, wait_for, wait_for_campaign

from app.auth import get_or_create_user
from app.services import cancel_campaign, resume_campaign, submit_campaign
from core.models import Campaign, Status, Structure, WorkItem, utcnow
from core.session import session_scope
from schemas import parse_spec
from workers import execute, lease
from workers.dispatch import in_process
from workers.sweeper import sweep


def _vacancy_spec(**protocol):
    spec = copy.deepcopy(TINY_SPEC)
    spec["sampling"]["protocols"] = spec["sampling"]["protocols"][1:]  # the vacancy run, 3 snapshots
    spec["sampling"]["protocols"][0].update(protocol)
    return parse_spec(spec)


def _finished(campaign_id: int, timeout: float = 120) -> Campaign:
    return wait_for_campaign(campaign_id, timeout)


def _item(campaign_id: int) -> WorkItem:
    with session_scope() as session:
        return session.query(WorkItem).filter_by(campaign_id=campaign_id, key="vacancy").one()


def _age_heartbeat(item_id: int, seconds: float) -> None:
    """What a dead holder leaves: its last heartbeat `seconds` ago."""
    with session_scope() as session:
        session.get(WorkItem, item_id).heartbeat_at = utcnow() - timedelta(seconds=seconds)


def test_claim_is_compare_and_set_and_a_lapsed_lease_is_stale_then_swept(env):
    from app import dashboard
    from core.settings import get_settings

    queued = []  # submitted, but its message never delivered
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), _vacancy_spec(), queued.extend).id
    item_id = _item(campaign_id).id

    assert lease.claim(item_id, "host-a:1:aaaa")
    assert not lease.claim(item_id, "host-b:2:bbbb")  # held: a second claim changes nothing
    assert execute.execute_item(item_id, final_attempt=True) == []  # a duplicate message does nothing
    item = _item(campaign_id)
    assert (item.status, item.lease_owner, item.attempts) == (Status.running, "host-a:1:aaaa", 1)

    # the holder dies: once the heartbeat is older than the lease timeout another process may take over
    _age_heartbeat(item_id, get_settings().lease_timeout + 1)
    assert lease.claim(item_id, "host-b:2:bbbb")
    assert execute._finish(item_id, "host-a:1:aaaa", Status.succeeded) == []  # the old holder's word is void
    item = _item(campaign_id)
    assert (item.status, item.lease_owner, item.attempts) == (Status.running, "host-b:2:bbbb", 2)

    # that one dies too: the dashboard shows the item as stale, the sweeper queues it and it runs here
    _age_heartbeat(item_id, get_settings().lease_timeout + 1)
    with session_scope() as session:
        stage = dashboard.progress(session, session.get(Campaign, campaign_id))["stages"][0]
    assert (stage["items"], stage["items_text"]) == ({"stale": 1}, "1 stale")
    assert [ref.item_id for ref in sweep(resend_pending=False)] == [item_id]
    assert _finished(campaign_id).status == Status.succeeded
    item = _item(campaign_id)
    assert (item.status, item.lease_owner, item.attempts) == (Status.succeeded, None, 3)
    with session_scope() as session:
        assert session.query(Structure).filter_by(campaign_id=campaign_id).count() == 3
    assert sweep(resend_pending=False) == []  # nothing left to sweep


def test_cancelling_a_running_item_creates_its_stop_file_and_resume_runs_it_again(env, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("DG_LEASE_TIMEOUT", "1")  # a heartbeat every 0.25 s
    get_settings.cache_clear()
    spec = _vacancy_spec(steps_per_temperature=6000, snapshot_every=3000)  # 3 snapshots, about 2 s apart
    with session_scope() as session:
        campaign_id = submit_campaign(session, get_or_create_user(session, "alice"), spec).id
    item_id = _item(campaign_id).id
    wait_for(lambda: _item(campaign_id).progress_done >= 1, 120, interval=0.05, what="the first snapshot")
    assert not lease.stop_file(item_id).exists()

    with session_scope() as session:
        cancel_campaign(session, session.get(Campaign, campaign_id))
    wait_for(lease.stop_file(item_id).exists, 10, interval=0.05, what="the heartbeat to create the stop file")
    assert lease.stop_file(item_id) == get_settings().data_dir / "run" / f"item-{item_id}.stop"
    assert in_process.wait(timeout=120)
    item = _item(campaign_id)
    assert (item.status, item.lease_owner) == (Status.cancelled, None)  # the run stopped and let go

    with session_scope() as session:
        resume_campaign(session, session.get(Campaign, campaign_id))
    assert _finished(campaign_id).status == Status.succeeded
    assert not lease.stop_file(item_id).exists()  # removed when the item was claimed again
    assert _item(campaign_id).attempts == 2
    with session_scope() as session:
        sources = [s.source for s in session.query(Structure).filter_by(campaign_id=campaign_id)]
    assert len(sources) == len(set(sources)) == 3
