"""Enrolled voices: enrol a name with a short sample, list, read and delete, scoped to API keys."""

from __future__ import annotations

import asyncio

from app.db.models import Speaker
from app.db.speaker_repository import SpeakerRepository
from app.errors import Invalid, NotFound, TooLarge
from app.schemas.speaker import SpeakerOut, SpeakerPage
from app.schemas.task import DecodeOptions, KnownSpeaker, TaskRequest
from app.services.auth import Principal, current_principal
from app.speakers.voices import (
    ENROLL_MAX_SECONDS,
    ENROLL_MIN_SECONDS,
    MAX_SAMPLE_BYTES,
    VoiceSampleError,
    decode_sample,
    embed_sample,
    reference_voices,
)
from config.settings import DiarizationSettings


def _resolved(principal: Principal | None) -> Principal | None:
    return principal if principal is not None else current_principal.get()


class SpeakerService:
    """The voices a key enrolled are visible to that key (and to admin keys) and name the speakers
    of that key's diarized tasks."""

    def __init__(self, repository: SpeakerRepository, settings: DiarizationSettings) -> None:
        self._repository = repository
        self._settings = settings

    async def enroll(self, name: str, sample: bytes, principal: Principal | None = None) -> SpeakerOut:
        name = name.strip()
        if not name:
            raise Invalid("the speaker needs a name")
        if len(sample) > MAX_SAMPLE_BYTES:
            raise TooLarge("the voice sample is too large")
        try:
            samples = await asyncio.to_thread(
                decode_sample, sample, min_seconds=ENROLL_MIN_SECONDS, max_seconds=ENROLL_MAX_SECONDS
            )
            embedding = await asyncio.to_thread(embed_sample, samples, self._settings.threads)
        except VoiceSampleError as exc:
            raise Invalid(str(exc)) from exc
        owner = _resolved(principal)
        speaker = await self._repository.add(
            Speaker(
                name=name,
                embedding=embedding,
                sample_seconds=round(len(samples) / 16000, 3),
                api_key_id=owner.key_id if owner is not None else None,
            )
        )
        return SpeakerOut.model_validate(speaker)

    async def _visible(self, speaker_id: str, principal: Principal | None) -> Speaker:
        speaker = await self._repository.get(speaker_id)
        owner = _resolved(principal)
        scope = owner.owner_filter if owner is not None else None
        if speaker is None or (scope is not None and speaker.api_key_id != scope):
            raise NotFound("speaker not found")
        return speaker

    async def get(self, speaker_id: str, principal: Principal | None = None) -> SpeakerOut:
        return SpeakerOut.model_validate(await self._visible(speaker_id, principal))

    async def search(self, *, limit: int, offset: int, principal: Principal | None = None) -> SpeakerPage:
        owner = _resolved(principal)
        rows, total = await self._repository.search(
            owner=owner.owner_filter if owner is not None else None, limit=limit, offset=offset
        )
        return SpeakerPage(
            items=[SpeakerOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
        )

    async def delete(self, speaker_id: str, principal: Principal | None = None) -> None:
        await self._visible(speaker_id, principal)
        await self._repository.delete(speaker_id)

    async def with_references(self, request: TaskRequest, options: DecodeOptions) -> DecodeOptions:
        """``options`` with the request's ``known_speaker_references`` embedded (422 when unusable)."""
        names, references = request.known_speaker_names or [], request.known_speaker_references or []
        if not references:
            return options
        return options.model_copy(
            update={"known_speakers": await self.reference_embeddings(names, references)}
        )

    async def reference_embeddings(self, names: list[str], references: list[str]) -> list[KnownSpeaker]:
        try:
            return await asyncio.to_thread(reference_voices, names, references, self._settings.threads)
        except VoiceSampleError as exc:
            raise Invalid(str(exc), param="known_speaker_references") from exc
