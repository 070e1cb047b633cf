"""`--tflite`: a TF Lite copy of a staged version, in TF Serving's layout (`<version>/model.tflite` next to the
SavedModel), served by `tensorflow_model_server --prefer_tflite_model`.

TF Serving's TfLiteSession serves one subgraph, so one signature is converted: `predict_pixels` (float32 pixels
in, the same outputs), float32, TF Lite's builtin ops only (the interpreter in tensorflow_model_server has no
TensorFlow ops). Its SignatureDef — the SavedModel's aliases, dtypes and shapes, pointing at the TF Lite tensors — is
stored in the model, where TF Serving reads it, so clients of `predict_pixels` see the same contract from either
runtime. The version's warmup file then holds `predict_pixels` requests only: TF Serving replays it against the
TF Lite model too, where the other signatures do not exist.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from export.publish.signatures import PREDICT_PIXELS
from serving.lifecycle.saved_model_bundle import find_meta_graph, read_saved_model
from serving.lifecycle.tflite_bundle import TFLITE_FILE, with_signature_defs

logger = logging.getLogger(__name__)

TFLITE_SIGNATURES = (PREDICT_PIXELS,)
TFLITE_TOLERANCE = 1e-4  # max |Δ| of the TF Lite model's probabilities from the in-memory model's


def convert(saved_model_dir: Path) -> bytes:
    """The staged SavedModel's `predict_pixels` as a float32 TF Lite model with its SignatureDef stored."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[PREDICT_PIXELS])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    model = converter.convert()
    saved = find_meta_graph(read_saved_model(saved_model_dir), ("serve",)).signature_def[PREDICT_PIXELS]
    interpreter = tf.lite.Interpreter(model_content=model)
    runner = interpreter.get_signature_runner(PREDICT_PIXELS)
    names = {**{a: d["name"] for a, d in runner.get_input_details().items()},
             **{a: d["name"] for a, d in runner.get_output_details().items()}}
    sigdef = meta_graph_pb2.SignatureDef()
    sigdef.CopyFrom(saved)
    for tensors in (sigdef.inputs, sigdef.outputs):
        for alias, info in tensors.items():
            info.name = names[alias]
    return with_signature_defs(model, {PREDICT_PIXELS: sigdef})


def write_tflite_model(staged: Path) -> dict:
    """Convert and write `model.tflite` into the staged version; what the metadata records about it."""
    model = convert(staged)
    (staged / TFLITE_FILE).write_bytes(model)
    logger.info("wrote %s (%.1f MiB) with the %s signature", staged / TFLITE_FILE, len(model) / 2**20,
                PREDICT_PIXELS)
    return {"file": TFLITE_FILE, "bytes": len(model), "signatures": list(TFLITE_SIGNATURES),
            "precision": "float32", "ops": "TFLITE_BUILTINS"}
