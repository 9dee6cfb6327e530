"""A tiny ONNX model with Piper's signature, and its ``.onnx.json``, so tests run the real Piper path without a voice.

No Vietnamese model can be downloaded where the tests run, and a real one is 63 MB. This one is built with the
``onnx`` package's helper API in a few milliseconds and is a few kilobytes, yet ``piper.PiperVoice.load`` and
``synthesize`` treat it exactly like a trained voice: the same inputs (``input`` int64 [1, n] phoneme ids,
``input_lengths`` int64 [1], ``scales`` float32 [3] = noise, length, noise_w, optional ``sid`` int64 [1]) and the
same output (audio float32 [1, 1, samples]).

What it "says" is chosen so a test can check that every setting reaches the model:

* each phoneme id becomes ``round(HOP * length_scale)`` samples: the length follows the ids and length_scale;
* each sample is a sine at ``(BASE_HZ + STEP_HZ * id) * (1 + noise_scale) * (1 + noise_w) * (1 + sid)``: the
  pitch follows the text, both noise settings and the speaker (compare zero crossings);
* ``work`` adds that many 1024x1024 matrix products that depend on the input (so ONNX Runtime cannot fold them
  away) and change nothing in the audio: a model as slow as a test needs, to show a voice that cannot keep up;
* ``silent`` multiplies the audio by zero: a model that runs but says nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

HOP = 256
"""Samples per phoneme id at length_scale 1 (Piper's own hop length)."""
BASE_HZ = 110.0
STEP_HZ = 6.0
SAMPLE_RATE = 16000
OPSET = 17
IR_VERSION = 8  # old enough for the onnxruntime of Raspberry Pi OS wheels, new enough for opset 17
_WORK_SIZE = 1024


def phoneme_id_map() -> dict[str, list[int]]:
    """Piper's default id map: the one its Vietnamese voices were trained with (espeak-ng IPA, tone digits)."""
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    return {phoneme: list(ids) for phoneme, ids in DEFAULT_PHONEME_ID_MAP.items()}


def write_config(
    path: Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    espeak_voice: str = "vi",
    language: str = "vi_VN",
    speakers: int = 1,
    id_map: dict[str, list[int]] | None = None,
    phoneme_type: str = "espeak",
    length_scale: float = 1.0,
) -> Path:
    """A ``.onnx.json`` laid out like the published Piper voices' (vi_VN-vais1000-medium.onnx.json)."""
    ids = phoneme_id_map() if id_map is None else id_map
    config: dict[str, Any] = {
        "dataset": "radiod-test",
        "audio": {"sample_rate": sample_rate, "quality": "x_low"},
        "espeak": {"voice": espeak_voice},
        "language": {"code": language, "family": language.partition("_")[0], "region": language.partition("_")[2]},
        "inference": {"noise_scale": 0.667, "length_scale": length_scale, "noise_w": 0.8},
        "phoneme_type": phoneme_type,
        "phoneme_map": {},
        "phoneme_id_map": ids,
        "num_symbols": 256,
        "num_speakers": speakers,
        "speaker_id_map": {f"speaker{i}": i for i in range(speakers)} if speakers > 1 else {},
        "piper_version": "1.0.0",
    }
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def build_model(path: Path, *, speakers: int = 1, work: int = 0, silent: bool = False, scales: bool = True) -> Path:
    """Write the model to ``path``; ``scales=False`` leaves out the ``scales`` input (not a Piper model)."""
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inits = [
        helper.make_tensor("hop", f32, [], [float(HOP)]),
        helper.make_tensor("ones2", i64, [2], [1, 1]),
        helper.make_tensor("one_dim", i64, [1], [1]),
        helper.make_tensor("flat_shape", i64, [3], [1, 1, -1]),
        helper.make_tensor("axis2", i64, [1], [2]),
        helper.make_tensor("cum_axis", i64, [], [2]),
        helper.make_tensor("i0", i64, [], [0]),
        helper.make_tensor("i1", i64, [], [1]),
        helper.make_tensor("i2", i64, [], [2]),
        helper.make_tensor("zero", f32, [], [0.0]),
        helper.make_tensor("one", f32, [], [1.0]),
        helper.make_tensor("half", f32, [], [0.0 if silent else 0.5]),
        helper.make_tensor("base", f32, [], [BASE_HZ]),
        helper.make_tensor("step", f32, [], [STEP_HZ]),
        helper.make_tensor("omega", f32, [], [2.0 * math.pi / SAMPLE_RATE]),
    ]
    nodes = [
        helper.make_node("Cast", ["input"], ["ids"], to=f32),
        helper.make_node("Unsqueeze", ["ids", "axis2"], ["ids_col"]),
        helper.make_node("Gather", ["scales_in", "i0"], ["noise"]),
        helper.make_node("Gather", ["scales_in", "i1"], ["length"]),
        helper.make_node("Gather", ["scales_in", "i2"], ["noise_w"]),
        # each id repeated round(HOP * length_scale) times
        helper.make_node("Mul", ["length", "hop"], ["hop_scaled"]),
        helper.make_node("Round", ["hop_scaled"], ["hop_rounded"]),
        helper.make_node("Cast", ["hop_rounded"], ["hop_int"], to=i64),
        helper.make_node("Reshape", ["hop_int", "one_dim"], ["hop_1"]),
        helper.make_node("Concat", ["ones2", "hop_1"], ["repeats"], axis=0),
        helper.make_node("Tile", ["ids_col", "repeats"], ["tiled"]),
        helper.make_node("Reshape", ["tiled", "flat_shape"], ["per_sample"]),
        # the frequency of each sample, then a sine over the sample index
        helper.make_node("Mul", ["per_sample", "step"], ["id_hz"]),
        helper.make_node("Add", ["id_hz", "base"], ["hz0"]),
        helper.make_node("Add", ["noise", "one"], ["noise_factor"]),
        helper.make_node("Add", ["noise_w", "one"], ["noise_w_factor"]),
        helper.make_node("Mul", ["hz0", "noise_factor"], ["hz1"]),
        helper.make_node("Mul", ["hz1", "noise_w_factor"], ["hz2"]),
        helper.make_node("Mul", ["per_sample", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "one"], ["ones"]),
        helper.make_node("CumSum", ["ones", "cum_axis"], ["t"]),
    ]
    hz = "hz2"
    if speakers > 1:
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=f32),
            helper.make_node("Add", ["sid_f", "one"], ["sid_factor"]),
            helper.make_node("Mul", ["hz2", "sid_factor"], ["hz3"]),
        ]
        hz = "hz3"
    nodes += [
        helper.make_node("Mul", [hz, "t"], ["cycles"]),
        helper.make_node("Mul", ["cycles", "omega"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "half"], ["audio"]),
    ]
    audio = "audio"
    if work:
        # M0 = len/len everywhere (1.0, but only known at run time); M(k+1) = M(k) @ M(k) / size stays 1.0
        inits += [
            helper.make_tensor("work_shape", i64, [2], [_WORK_SIZE, _WORK_SIZE]),
            helper.make_tensor("inv_size", f32, [], [1.0 / _WORK_SIZE]),
        ]
        nodes += [
            helper.make_node("Cast", ["input_lengths"], ["len_f"], to=f32),
            helper.make_node("Div", ["len_f", "len_f"], ["unit"]),
            helper.make_node("Expand", ["unit", "work_shape"], ["m0"]),
        ]
        for k in range(work):
            nodes += [
                helper.make_node("MatMul", [f"m{k}", f"m{k}"], [f"p{k}"]),
                helper.make_node("Mul", [f"p{k}", "inv_size"], [f"m{k + 1}"]),
            ]
        nodes += [
            helper.make_node("ReduceMean", [f"m{work}"], ["work_mean"], keepdims=0),
            helper.make_node("Mul", ["work_mean", "zero"], ["work_zero"]),
            helper.make_node("Add", ["audio", "work_zero"], ["audio_worked"]),
        ]
        audio = "audio_worked"
    nodes.append(helper.make_node("Identity", [audio], ["output"]))

    inputs = [
        helper.make_tensor_value_info("input", i64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", i64, [1]),
    ]
    if scales:
        inputs.append(helper.make_tensor_value_info("scales", f32, [3]))
        nodes.insert(0, helper.make_node("Identity", ["scales"], ["scales_in"]))
    else:  # the same arithmetic on fixed scales, but the model no longer takes Piper's inputs
        inits.append(helper.make_tensor("scales_in", f32, [3], [0.667, 1.0, 0.8]))
    if speakers > 1:
        inputs.append(helper.make_tensor_value_info("sid", i64, [1]))
    graph = helper.make_graph(
        nodes,
        "radiod-test-piper",
        inputs,
        [helper.make_tensor_value_info("output", f32, [1, 1, "samples"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def build_voice(folder: Path, name: str = "vi_VN-test-x_low", **model_options: Any) -> Path:
    """``folder/name.onnx`` and ``folder/name.onnx.json`` as Piper publishes a voice; returns the ``.onnx``.

    ``model_options`` go to :func:`build_model`, except ``config``: a dict of :func:`write_config` options.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config_options = model_options.pop("config", {})
    speakers = model_options.get("speakers", 1)
    model = build_model(folder / f"{name}.onnx", **model_options)
    write_config(folder / f"{name}.onnx.json", **{"speakers": speakers, **config_options})
    return model
