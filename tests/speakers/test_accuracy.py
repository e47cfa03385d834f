"""Diarization accuracy on recordings of 2, 3 and 4 distinct speakers, scored with pyannote.metrics.

The recordings alternate single-speaker clips of different people (see ``tests/speaker_samples``);
DER uses a 0.25 s collar, the usual forgiveness for boundary placement.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from app.schemas.task import DecodeOptions
from app.speakers.diarizer import KnownVoice, Turn
from app.speakers.features import mel_filterbank
from app.speakers.pipeline import speaker_turns
from app.speakers.voices import embed_sample
from config.settings import DiarizationSettings
from tests.speaker_samples import CONVERSATIONS, Conversation, conversation, speech_of

pytestmark = pytest.mark.slow

MAX_DER = 0.10


def der(reference: Conversation, turns: list[Turn]) -> float:
    truth, found = Annotation(), Annotation()
    for turn in reference.turns:
        truth[Segment(turn.start, turn.end)] = turn.speaker
    for hyp in turns:
        found[Segment(hyp.start, hyp.end)] = hyp.speaker
    metric = DiarizationErrorRate(collar=0.25)
    return float(metric(truth, found, uem=Segment(0.0, len(reference.samples) / 16000)))


@pytest.mark.parametrize("speakers", sorted(CONVERSATIONS))
def test_speaker_count_is_estimated_and_der_is_low(speakers: int) -> None:
    talk = conversation(CONVERSATIONS[speakers])
    assert len(talk.speakers) == speakers and len(talk.turns) >= 2 * speakers

    turns = speaker_turns(talk.samples, DecodeOptions(diarize=True), [], DiarizationSettings())

    assert len({turn.speaker for turn in turns}) == speakers
    assert der(talk, turns) <= MAX_DER
    labels = [turn.speaker for turn in turns]
    assert labels[0] == "A" and sorted(set(labels)) == [chr(ord("A") + i) for i in range(speakers)]


def test_a_given_speaker_count_is_used() -> None:
    talk = conversation(CONVERSATIONS[3])
    options = DecodeOptions(diarize=True, num_speakers=2)
    turns = speaker_turns(talk.samples, options, [], DiarizationSettings())
    assert len({turn.speaker for turn in turns}) == 2
    bounded = DecodeOptions(diarize=True, max_speakers=2)
    assert len({t.speaker for t in speaker_turns(talk.samples, bounded, [], DiarizationSettings())}) == 2
    single = conversation(["jfk"])
    at_least = DecodeOptions(diarize=True, min_speakers=2)
    assert len({t.speaker for t in speaker_turns(single.samples, at_least, [], DiarizationSettings())}) == 2


def test_one_speaker_stays_one() -> None:
    for speaker in ("jfk", "austen_reader", "librispeech_1089"):
        talk = conversation([speaker])
        turns = speaker_turns(talk.samples, DecodeOptions(diarize=True), [], DiarizationSettings())
        assert {turn.speaker for turn in turns} == {"A"}, speaker


def test_known_voices_name_their_clusters_and_a_stranger_gets_a_letter() -> None:
    talk = conversation(CONVERSATIONS[3])  # jfk, librispeech_1089, ljspeech
    voices = [
        KnownVoice("Kennedy", np.asarray(embed_sample(speech_of("jfk.flac")), dtype=np.float32)),
        KnownVoice("Reader", np.asarray(embed_sample(speech_of("1089-134686-0001.wav")), dtype=np.float32)),
    ]
    turns = speaker_turns(talk.samples, DecodeOptions(diarize=True), voices, DiarizationSettings())
    expected = {"jfk": "Kennedy", "librispeech_1089": "Reader", "ljspeech": "A"}
    for reference in talk.turns:
        middle = (reference.start + reference.end) / 2
        speaker = next(turn.speaker for turn in turns if turn.start <= middle <= turn.end)
        assert speaker == expected[reference.speaker], reference


def test_mel_filterbank_has_slaney_shape() -> None:
    filters = mel_filterbank()
    assert filters.shape == (40, 201)
    assert np.all(filters >= 0) and np.all(filters.sum(axis=1) > 0)
    peaks = filters.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0), "the filters rise in frequency"
    # Below 1 kHz the Slaney scale is linear: equal spacing of the first filters' peaks (25 Hz bins).
    assert np.ptp(np.diff(peaks[:10])) <= 1
