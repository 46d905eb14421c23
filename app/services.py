"""Campaign operations shared by the REST API and the CLI; each commits before it enqueues."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from core import access
from core.models import Campaign, Label, Status, User
from core.settings import get_settings
from schemas import CampaignSpec, FieldError, SpecError
from schemas.limits import Limits, effective_budget, limit_errors
from workers import pipeline
from workers.dispatch import send
from workers.pipeline import TaskRef

Dispatch = Callable[[Iterable[TaskRef]], None]


def server_limits() -> Limits:
    """The operator's DG_MAX_* limits of one campaign."""
    return Limits.of(get_settings())


def check_supported(spec: CampaignSpec) -> None:
    """SpecError for a valid spec the stages cannot run yet. Alloys and hcp metals run every stage but the
    validation study (issue #18), which still takes one element on bcc or fcc: its suite of defect properties is
    built for a pure cubic metal. Every entry point checks this first: submit_campaign (the CLI's run and study, the
    API's last step) and app.policy.check_network_spec (the API's first, before anything is estimated or built)."""
    if spec.study is not None and (len(spec.species) > 1 or spec.lattice == "hcp"):
        what = f"an alloy ({', '.join(spec.species)})" if len(spec.species) > 1 else f"hcp {spec.element}"
        raise SpecError([FieldError("study", (
            f"the validation study of {what} is not supported yet: its suite of defect properties is built for one "
            "element on bcc or fcc; remove study (the refinement's MTP and its errors on the held-out cells stay)"))])


def submit_campaign(session: Session, owner: User, spec: CampaignSpec, dispatch: Dispatch = send,
                    *, checked: bool = False) -> Campaign:
    """Check, store and start a campaign; SpecError (nothing stored) when the spec cannot run.

    Specs the stages cannot run yet are refused first (check_supported); then the cheap limit checks run
    (schemas.limits: nothing is built for a spec above the server's limits or its own budget); then
    pipeline.check_spec in this process, unless ``checked`` (the API has run it in a process of
    app.spec_checks, under a time bound). The campaign is stored with its effective budget
    (each limit the smaller of the server's and the spec's), which is what its stages read.
    """
    check_supported(spec)
    limits = server_limits()
    errors = limit_errors(spec, limits)
    if errors:
        raise SpecError([FieldError(field, message) for field, message in errors])
    if not checked:
        pipeline.check_spec(spec)
    spec = effective_budget(spec, limits)
    campaign = pipeline.create_campaign(session, owner, spec)
    refs = pipeline.start(session, campaign)
    session.commit()
    dispatch(refs)
    return campaign


def cancel_campaign(session: Session, campaign: Campaign) -> None:
    pipeline.cancel(session, campaign)
    session.commit()


def resume_campaign(session: Session, campaign: Campaign, dispatch: Dispatch = send) -> None:
    refs = pipeline.resume(session, campaign)
    session.commit()
    dispatch(refs)


def recover_interrupted(session: Session, dispatch: Dispatch = send) -> list[int]:
    """Re-run the unfinished work of campaigns left running by a process that died.

    For the in-process executor only: its queue lived in the dead process. With a broker, the lease
    sweeper (workers/sweeper.py) sends lost work again. Items under a lease that has not lapsed yet are
    left to the sweeper too (pipeline.resume).
    """
    campaigns = access.campaigns_in_progress(session)
    for campaign in campaigns:
        resume_campaign(session, campaign, dispatch)
    return [campaign.id for campaign in campaigns]


class NotFoundError(LookupError):
    """The thing asked for does not exist (or belongs to another user): a 404."""


class ConflictError(RuntimeError):
    """The request does not fit the current state (e.g. retrying a label that did not fail): a 409."""


LABEL_TASK = "dg.labelling.label_structure"


def retry_label(session: Session, campaign: Campaign, label_id: int, dispatch: Dispatch = send) -> Label:
    """Queue a failed ledger row again and re-run the campaign's labelling items that need it.

    The row keeps its attempts and failure history (the retry policy of labelling.failures sees them);
    its state goes back to queued, as labelling.ledger.on_failure does for an automatic retry, and the
    labelling work items of this campaign whose cell uses the row run again (the campaign is running
    until they finish). Commits, then enqueues.
    """
    label = access.find_label(session, label_id, for_update=True)
    cells = access.cells_using_label(session, campaign.id, label_id)
    if label is not None and label.structure_id is not None and access.campaign_of_structure(
        session, label.structure_id
    ) == campaign.id:
        cells.add(label.structure_id)
    if label is None or not cells:
        raise NotFoundError(f"label {label_id} not found in campaign {campaign.id}")
    if label.state != "failed":
        raise ConflictError(f"label {label_id} is {label.state}; only a failed label can be retried")
    if campaign.status == Status.cancelled:
        raise ConflictError(f"campaign {campaign.id} is cancelled; resume it before retrying its labels")
    items = [
        item for item in access.work_items_of_task(session, campaign.id, LABEL_TASK)
        if int(item.params.get("structure_id", -1)) in cells
    ]
    if not items:
        raise ConflictError(f"label {label_id} has no labelling work item in campaign {campaign.id} to run it")
    if any(item.status in (Status.pending, Status.running) for item in items):
        raise ConflictError(f"label {label_id} is already being worked on")
    label.state, label.job_id, label.error = "queued", None, None
    now_running = {item.stage_run_id for item in items}
    for item in items:
        item.status, item.error, item.finished_at, item.progress_done = Status.pending, None, None, 0
    for stage_run in campaign.stages:
        if stage_run.id in now_running:
            stage_run.status, stage_run.error, stage_run.finished_at = Status.running, None, None
    campaign.status, campaign.error, campaign.finished_at = Status.running, None, None
    refs = [TaskRef(item.id, item.task_name, item.queue) for item in items]
    session.commit()
    dispatch(refs)
    return label
