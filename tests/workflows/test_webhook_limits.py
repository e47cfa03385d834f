"""A workflow ``webhook`` step reads at most ``WORKFLOWS__WEBHOOK_MAX_RESPONSE_BYTES`` of the reply
and gives up at ``WORKFLOWS__WEBHOOK_TIMEOUT_SECONDS`` overall (issue 13, point 6)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from app.workflows.steps import RESPONSE_SNIPPET_CHARS, StepCall, StepFailedError
from config.settings import Settings
from tests.conftest import running_app
from tests.slow_peer import Body, slow_peer

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 2.0


def _call(url: str) -> StepCall:
    return StepCall(
        run_id="run-1",
        workflow_id="workflow-1",
        step_id="notify",
        uses="webhook",
        attempt=1,
        inputs={"url": url, "body": {"hello": "world"}},
        default_body={},
    )


async def test_webhook_step_caps_an_endless_reply_and_times_out_a_trickling_one(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        workflows={"webhook_timeout_seconds": DEADLINE_SECONDS, "webhook_max_response_bytes": 100_000}
    )
    async with running_app(settings, paused=True) as running:
        steps = running.container.workflow_steps
        with slow_peer(Body.ENDLESS) as endless:
            # Old behaviour: the whole (endless) body was read into memory; the guard below fails.
            async with asyncio.timeout(30):
                result = await steps.run(_call(f"{endless.url}/hook"))
            assert result.output["status_code"] == 200
            assert result.output["truncated"] is True
            assert result.output["response"] == "x" * RESPONSE_SNIPPET_CHARS
            # The connection was dropped after the cap, not kept open to drain the rest.
            deadline = time.monotonic() + 10
            while not endless.finished:
                assert time.monotonic() < deadline, "the endless reply was still being read"
                await asyncio.sleep(0.05)

        with slow_peer(Body.TRICKLE, interval=0.1) as trickler:
            started = time.monotonic()
            # Old behaviour: httpx's per-read timeout never fires on a trickle; the guard fails.
            async with asyncio.timeout(30):
                with pytest.raises(StepFailedError, match="did not answer completely within 2 s"):
                    await steps.run(_call(f"{trickler.url}/hook"))
            assert time.monotonic() - started < DEADLINE_SECONDS + 5
