"""Triggers: cron schedules (each slot fires once across all nodes) and event matching.

Every node runs a :class:`Scheduler`. On each tick it computes, per cron trigger, the latest slot
at or before now; the firing is an insert into ``workflow_fires`` whose primary key is
(workflow, ``cron:<trigger index>:<slot>``), in the same transaction as the run. Only the node whose
insert succeeds starts the run. Slots before the workflow was created or last changed never fire,
and after downtime only the latest missed slot fires (no burst of catch-up runs).

``task.completed`` triggers fire from the in-process event of the node that finished the task. If
that node stops in between, the event is lost; so each tick also runs a catch-up sweep, which fires
them for tasks completed recently (see ``WorkflowService.catch_up_events``) through the same
``workflow_fires`` row: the live event and the sweep never start two runs for one task.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from app.background import BackgroundLoop
from app.db.models import Task, Workflow, utcnow
from app.workflows.definition import CronTrigger, EventTrigger
from app.workflows.url_patterns import UrlPatternError, glob_matches, regex_matches

logger = logging.getLogger(__name__)

FireCron = Callable[[Workflow, int, CronTrigger, datetime], Awaitable[bool]]
"""Start the run of one slot: (workflow, trigger index, trigger, slot) -> whether this node fired it."""
LoadCron = Callable[[], Awaitable[list[tuple[Workflow, list[tuple[int, CronTrigger]]]]]]


def latest_slot(trigger: CronTrigger, now: datetime) -> datetime:
    """The latest slot of ``trigger`` at or before ``now``, in UTC (computed in the trigger's zone)."""
    zone = zoneinfo.ZoneInfo(trigger.timezone)
    # get_prev is strictly before its start: start one second past `now` (whole seconds), so a
    # slot exactly at `now` counts.
    start = now.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1)
    slot: datetime = croniter(trigger.schedule, start).get_prev(datetime)
    return slot.astimezone(UTC)


def slot_key(index: int, slot: datetime) -> str:
    return f"cron:{index}:{slot.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def task_matches(trigger: EventTrigger, task: Task) -> bool:
    """Each ``match`` field must equal the task's (platform, task_type, language, model, source)."""
    return all(str(getattr(task, key, None) or "") == expected for key, expected in trigger.match.items())


def link_matches(trigger: EventTrigger, url: str) -> bool:
    """``url`` is a glob (``https://www.youtube.com/*``), ``url_regex`` an RE2 regex searched in the
    link (linear time, see :mod:`app.workflows.url_patterns`). A pattern that cannot be used (saved
    before the checks existed) matches nothing."""
    try:
        pattern = trigger.match.get("url")
        if pattern is not None and not glob_matches(pattern, url):
            return False
        regex = trigger.match.get("url_regex")
        return regex is None or regex_matches(regex, url)
    except UrlPatternError:
        return False


class Scheduler:
    """Fires due cron slots; any number of nodes may run one."""

    def __init__(
        self,
        *,
        tick_seconds: float,
        load: LoadCron,
        fire: FireCron,
        catch_up: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._load = load
        self._fire = fire
        self._catch_up = catch_up
        self._seen: dict[tuple[str, str], None] = {}
        self._loop = BackgroundLoop(
            "workflow-scheduler",
            self._round,
            interval=tick_seconds,
            failure="workflow event catch-up failed; retrying",
            log=logger,
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _round(self) -> None:
        try:
            await self.tick()
        except Exception:
            logger.exception("workflow schedule tick failed; retrying")
        if self._catch_up is not None:
            await self._catch_up()

    async def tick(self, now: datetime | None = None) -> int:
        """Fire every due slot not fired yet; returns how many runs this node started."""
        now = now or utcnow()
        started = 0
        for workflow, triggers in await self._load():
            for index, trigger in triggers:
                try:
                    slot = latest_slot(trigger, now)
                except Exception:
                    logger.warning("workflow %s: cron trigger %d cannot be evaluated", workflow.id, index)
                    continue
                if slot < workflow.updated_at.replace(microsecond=0):
                    continue  # a slot from before the workflow (as it is now) existed
                key = (workflow.id, slot_key(index, slot))
                if key in self._seen:
                    continue
                if await self._fire(workflow, index, trigger, slot):
                    started += 1
                self._seen[key] = None
                if len(self._seen) > 10000:
                    self._seen.pop(next(iter(self._seen)))
        return started


def cron_triggers(definition: Mapping[str, Any]) -> list[tuple[int, CronTrigger]]:
    found: list[tuple[int, CronTrigger]] = []
    for index, trigger in enumerate(definition.get("triggers") or []):
        if isinstance(trigger, Mapping) and trigger.get("type") == "cron":
            with suppress(ValueError):
                found.append((index, CronTrigger.model_validate(trigger)))
    return found


def event_triggers(definition: Mapping[str, Any], name: str) -> list[tuple[int, EventTrigger]]:
    found: list[tuple[int, EventTrigger]] = []
    for index, trigger in enumerate(definition.get("triggers") or []):
        if isinstance(trigger, Mapping) and trigger.get("type") == "event" and trigger.get("on") == name:
            with suppress(ValueError):
                found.append((index, EventTrigger.model_validate(trigger)))
    return found
