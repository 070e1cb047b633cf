"""Run every signature of an export through the model server's graph-mode loader and through TF2's loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from export.publish.signatures import CLASSIFY, PREDICT_PIXELS, SERVING_DEFAULT, example_for
from serving.lifecycle.servable import Servable


def signature_inputs(encoded: list[bytes], input_size: tuple[int, int]) -> dict[str, dict[str, np.ndarray]]:
    """The same images for each signature of the contract."""
    from export.data.preprocessing import decode_batch

    strings = np.empty(len(encoded), dtype=object)
    strings[:] = encoded
    examples = np.empty(len(encoded), dtype=object)
    examples[:] = [example_for(e) for e in encoded]
    pixels = decode_batch(tf.constant(encoded), input_size).numpy()
    return {SERVING_DEFAULT: {"image_bytes": strings}, PREDICT_PIXELS: {"pixels": pixels},
            CLASSIFY: {"inputs": examples}}


def graph_mode_vs_tf2(path: Path, encoded: list[bytes], input_size: tuple[int, int]) -> dict[str, float]:
    """Max |Δ| per signature between the graph-mode Session and TF2's `tf.saved_model.load` over all outputs
    (inf if a string or integer output differs). Raises if any signature cannot run in graph mode."""
    servable = Servable("under_test", 1, path)
    loaded = tf.saved_model.load(str(path))
    deltas = {}
    for key, inputs in signature_inputs(encoded, input_size).items():
        graph = servable.run(servable.signature(key), inputs)
        eager = {k: v.numpy() for k, v in loaded.signatures[key](**{a: tf.constant(v) for a, v in inputs.items()})
                 .items()}
        assert set(graph) == set(eager), key
        worst = 0.0
        for alias, value in graph.items():
            if value.dtype.kind == "f":
                worst = max(worst, float(np.abs(value - eager[alias]).max()))
            elif not np.array_equal(value, eager[alias]):
                worst = float("inf")
        deltas[key] = worst
    return deltas


def bfloat16_nodes(path: Path) -> tuple[int, list[str]]:
    """(how many nodes the SavedModel's serving graph and its functions hold, the names of those with a bfloat16
    type attribute): a model trained under mixed precision must export none."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((Path(path) / "saved_model.pb").read_bytes())
    bf16 = tf.bfloat16.as_datatype_enum
    graph = saved.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return len(nodes), [n.name for n in nodes for a in n.attr.values() if a.type == bf16 or bf16 in a.list.type]
