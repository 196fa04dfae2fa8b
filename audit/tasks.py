"""Celery tasks of the event bus: thin, take ids, call ``audit.deliveries``."""

from __future__ import annotations

from celery import shared_task

from . import deliveries


@shared_task(name="audit.tasks.route_event", ignore_result=True, acks_late=True, soft_time_limit=60, time_limit=90)
def route_event(event_id: int) -> list[int]:
    """Create one delivery per channel or webhook that wants the event, and queue them."""
    return deliveries.route_event(event_id=event_id)


# Retried through Celery (``self.retry`` with Celery's exponential backoff, at least the
# receiver's Retry-After); the delivery row bounds the retries by time (NOTIFY_GIVE_UP_AFTER).
@shared_task(
    bind=True,
    name="audit.tasks.deliver",
    ignore_result=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=90,
    time_limit=120,
)
def deliver(self, delivery_id: int) -> None:
    countdown = deliveries.delivery_attempt(delivery_id=delivery_id)
    if countdown is not None:
        raise self.retry(countdown=countdown)


@shared_task(
    name="audit.tasks.send_group_summary", ignore_result=True, acks_late=True, soft_time_limit=60, time_limit=90
)
def send_group_summary(group_id: int) -> int | None:
    """At the end of a grouping window: one message summing up the repeats held back."""
    return deliveries.group_summary_send(group_id=group_id)


@shared_task(name="audit.tasks.sweep_notifications", ignore_result=True, soft_time_limit=120, time_limit=180)
def sweep_notifications() -> dict[str, int]:
    """Beat (every minute): summaries and deliveries whose task message was lost."""
    return {"summaries": deliveries.groups_flush(), "requeued": deliveries.deliveries_requeue()}
