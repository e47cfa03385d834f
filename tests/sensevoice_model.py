"""A tiny SenseVoice-shaped ONNX model, built at test time, that sherpa-onnx loads like the real one.

It has SenseVoiceSmall's signature (``x`` [N, T, 560] LFR features, ``x_length``, ``language``
and ``text_norm`` int32 [N] in; ``logits`` [N, T + 4, vocab] out) and the metadata keys that
sherpa-onnx's SenseVoice loader reads (``vocab_size``, ``lfr_window_size``, ``lfr_window_shift``,
``normalize_samples``, ``with_itn``, ``without_itn``, ``lang_*``, ``neg_mean``, ``inv_stddev``).
Its weights are constant logit tables: whatever the audio, CTC greedy decoding yields a fixed
token sequence: language, emotion and event tags, then ``语音识别。`` with inverse text
normalisation or ``语音识别`` without it (the ``text_norm`` input chooses the table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOKENS = [
    "<blank>",
    "<s>",
    "</s>",
    "<|zh|>",
    "<|en|>",
    "<|yue|>",
    "<|ja|>",
    "<|ko|>",
    "<|nospeech|>",
    "<|HAPPY|>",
    "<|NEUTRAL|>",
    "<|Speech|>",
    "<|BGM|>",
    "<|withitn|>",
    "<|woitn|>",
    "语",
    "音",
    "识",
    "别",
    "。",
]
WITH_ITN_ID = 14
WITHOUT_ITN_ID = 15
LANGUAGE_IDS = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12}
MAX_FRAMES = 800
"""Rows of the constant tables: LFR frames (60 ms each) plus the 4 tag frames; > 30 s."""
TEXT_FRAMES = (5, 7, 9, 11, 13)
"""Frames (after the 4 tag frames' offset is included) that carry the text tokens."""

TEXT_WITH_ITN = "语音识别。"
TEXT_WITHOUT_ITN = "语音识别"
LANGUAGE_TAG, EMOTION_TAG, EVENT_TAG = "<|zh|>", "<|HAPPY|>", "<|BGM|>"


def _table(itn: bool) -> np.ndarray:
    """Logits: blank everywhere except one token per tag frame and per text frame."""
    table = np.zeros((MAX_FRAMES, len(TOKENS)), dtype=np.float32)
    table[:, 0] = 10.0
    sequence = [LANGUAGE_TAG, EMOTION_TAG, EVENT_TAG, "<|withitn|>" if itn else "<|woitn|>"]
    for frame, token in enumerate(sequence):
        table[frame, 0] = 0.0
        table[frame, TOKENS.index(token)] = 10.0
    text = TEXT_WITH_ITN if itn else TEXT_WITHOUT_ITN
    for frame, character in zip(TEXT_FRAMES, text, strict=False):
        table[frame, 0] = 0.0
        table[frame, TOKENS.index(character)] = 10.0
    return table


def build_sensevoice_model(directory: Path) -> Path:
    """Write ``model.int8.onnx`` and ``tokens.txt`` into ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    feature_dim = 560
    initializers = [
        numpy_helper.from_array(_table(True)[None], "with_itn_table"),
        numpy_helper.from_array(_table(False)[None], "without_itn_table"),
        numpy_helper.from_array(np.array([WITH_ITN_ID], dtype=np.int32), "with_itn_id"),
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "cond_shape"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([4], dtype=np.int64), "four"),
    ]
    nodes = [
        helper.make_node("Equal", ["text_norm", "with_itn_id"], ["is_itn"]),
        helper.make_node("Reshape", ["is_itn", "cond_shape"], ["is_itn_3d"]),
        helper.make_node("Where", ["is_itn_3d", "with_itn_table", "without_itn_table"], ["tables"]),
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "one", "four"], ["frames_and_dim"]),
        helper.make_node("Slice", ["frames_and_dim", "zero", "one"], ["frames"]),
        helper.make_node("Add", ["frames", "four"], ["frames_out"]),
        helper.make_node("Slice", ["tables", "zero", "frames_out", "one"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sensevoice_fixed_output",
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", feature_dim]),
            helper.make_tensor_value_info("x_length", TensorProto.INT32, ["N"]),
            helper.make_tensor_value_info("language", TensorProto.INT32, ["N"]),
            helper.make_tensor_value_info("text_norm", TensorProto.INT32, ["N"]),
        ],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T4", len(TOKENS)])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata = {
        "model_type": "sense_voice_ctc",
        "version": "1",
        "vocab_size": str(len(TOKENS)),
        "blank_id": "0",
        "lfr_window_size": "7",
        "lfr_window_shift": "6",
        "normalize_samples": "0",
        "with_itn": str(WITH_ITN_ID),
        "without_itn": str(WITHOUT_ITN_ID),
        **{f"lang_{name}": str(value) for name, value in LANGUAGE_IDS.items()},
        "neg_mean": ",".join(["0"] * feature_dim),
        "inv_stddev": ",".join(["1"] * feature_dim),
        "comment": "test model with SenseVoiceSmall's interface",
    }
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / "model.int8.onnx"))
    (directory / "tokens.txt").write_text(
        "".join(f"{token} {index}\n" for index, token in enumerate(TOKENS)), encoding="utf-8"
    )
    return directory
