"""Token estimate and chunking on segment, sentence, clause and word boundaries."""

from __future__ import annotations

from app.llm.chunking import chunk_transcript, estimate_tokens


def test_estimate_counts_cjk_per_character() -> None:
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("") == 0


def test_chunks_keep_segments_whole_when_they_fit() -> None:
    segments = ["First segment here.", "Second one.", "Third segment is a bit longer."]
    assert chunk_transcript(segments, 8) == [
        "First segment here. Second one.",
        "Third segment is a bit longer.",
    ]
    assert chunk_transcript(segments, 1000) == [" ".join(segments)]


def test_long_segments_are_cut_between_sentences_then_words() -> None:
    text = "One two three. Four five six seven eight nine ten eleven twelve."
    chunks = chunk_transcript([text], 6)
    assert chunks[0] == "One two three."
    assert all(estimate_tokens(chunk) <= 6 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()
    assert chunk_transcript([text], 6) == chunks, "deterministic"


def test_text_without_spaces_is_cut_by_characters() -> None:
    chunks = chunk_transcript(["你好世界。" * 4 + "没有空格的一段很长的中文文本"], 7)
    assert all(estimate_tokens(chunk) <= 7 for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == "你好世界。" * 4 + "没有空格的一段很长的中文文本"
