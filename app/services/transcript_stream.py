"""Server-sent events of a transcription as it is decoded, in OpenAI's streaming shape.

``transcript.text.delta`` carries the text of each segment as the processor decodes it (when the
task runs on this node; a task running elsewhere streams when it ends), ``transcript.text.segment``
each diarized segment with its speaker (once the speakers are known: diarization runs beside the
decoding), and ``transcript.text.done`` the full text at the end. A client that leaves deletes its
task.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.schemas.result import Segment, TranscriptionResult
from app.schemas.task import TaskStatus
from app.services.task_service import TaskService
from app.speakers.assign import label_speakers

POLL_SECONDS = 0.25
"""How often a stream looks for newly decoded segments."""


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event; the type is in the data, as OpenAI sends it."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def diarized_segment(segment: Segment, index: int) -> dict[str, Any]:
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": segment.start,
        "end": segment.end,
        "text": segment.text.strip(),
        "speaker": segment.speaker or "A",
    }


class _Progress:
    """What a stream has sent so far."""

    def __init__(self, diarized: bool) -> None:
        self.diarized = diarized
        self.text = ""
        self.raw_segments = 0
        self.labelled_segments = 0

    def deltas(self, segments: list[Segment]) -> list[bytes]:
        events = []
        for segment in segments[self.raw_segments :]:
            delta = segment.text if self.text else segment.text.lstrip()
            if delta:
                events.append(sse({"type": "transcript.text.delta", "delta": delta}))
                self.text += delta
        self.raw_segments = max(self.raw_segments, len(segments))
        return events

    def labelled(self, segments: list[Segment]) -> list[bytes]:
        events = []
        for index in range(self.labelled_segments, len(segments)):
            events.append(sse(diarized_segment(segments[index], index)))
        self.labelled_segments = max(self.labelled_segments, len(segments))
        return events


async def stream_transcript(
    service: TaskService, task_id: str, *, diarized: bool, failed: Callable[[str], dict[str, Any]]
) -> AsyncIterator[bytes]:
    """The events of ``task_id`` until it ends; ``failed(message)`` is the error event of a failed task."""
    progress = _Progress(diarized)
    finished = False
    try:
        while True:
            task = await service.get(task_id, wait=POLL_SECONDS)
            if task.status.finished:
                finished = True
                if task.status is not TaskStatus.completed or task.result is None:
                    yield sse(failed(task.error or "the transcription failed"))
                    return
                result = TranscriptionResult.model_validate(task.result)
                for event in _final(progress, result):
                    yield event
                return
            live = service.live(task_id)
            if live is None:
                continue
            for event in progress.deltas(live.segments):
                yield event
            if diarized and live.turns is not None:
                # Segments before the last one can no longer change; the last may still grow.
                done = live.segments[:-1]
                labelled = label_speakers(
                    TranscriptionResult(text="", language=None, duration=0.0, segments=done), live.turns
                ).segments
                for event in progress.labelled(labelled):
                    yield event
    finally:
        if not finished:
            await service.delete_abandoned(task_id, "stream client left")


def _final(progress: _Progress, result: TranscriptionResult) -> list[bytes]:
    events: list[bytes] = []
    full = result.text.strip()
    if full.startswith(progress.text) and len(full) > len(progress.text):
        events.append(sse({"type": "transcript.text.delta", "delta": full[len(progress.text) :]}))
    elif not progress.text and full:
        events.append(sse({"type": "transcript.text.delta", "delta": full}))
    if progress.diarized:
        events.extend(progress.labelled(result.segments))
    events.append(sse({"type": "transcript.text.done", "text": full}))
    return events
