"""Named Celery tasks, one per stage task name; each takes a work-item id."""

from __future__ import annotations

from celery import Task

from core.settings import get_settings
from workers.celery_app import celery_app
from workers.dispatch import send_to_celery
from workers.execute import execute_item
from workers.pipeline import STAGES


def _make_task(task_name: str) -> Task:
    @celery_app.task(name=task_name, bind=True, acks_late=True)
    def run(self: Task, item_id: int) -> None:
        settings = get_settings()
        final = self.request.retries >= settings.task_max_retries
        try:
            follow_ups = execute_item(item_id, final_attempt=final)
        except Exception as exc:
            raise self.retry(exc=exc, countdown=settings.task_retry_backoff * 2**self.request.retries) from exc
        send_to_celery(follow_ups, settings.broker_url or "memory://")

    return run


TASKS = {stage.task_name: _make_task(stage.task_name) for stage in STAGES}
