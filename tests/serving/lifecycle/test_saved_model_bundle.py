"""The servable loader takes TF Serving's path: graph-mode Session over the tagged MetaGraph, run by tensor name.

Covers a TF1-era SavedModel (Builder, main_op, an asset file the graph reads), the loader's error codes and messages,
the SavedModel pattern that TF2's loader accepts but TF Serving does not, and the session settings from the flags.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc

from serving.core.inference import InferenceCore, ModelRef
from serving.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound
from serving.lifecycle.servable import Servable
from tests.serving.conftest import serving

VOCAB = ["cat", "dog", "espresso_cup"]


def build_tf1_model(path: Path, scratch: Path) -> Path:
    """A TF1 Builder SavedModel: y = w·x + 1 (a variable), word → id through a vocabulary asset file initialised by
    the main_op, and a classify signature over tf.Examples. The original vocabulary file is deleted afterwards, so
    the lookup works only if the loader feeds the copied asset's path."""
    v1 = tf.compat.v1
    vocab = scratch / "vocab.txt"
    vocab.write_text("".join(f"{w}\n" for w in VOCAB))
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None], name="x")
        w = v1.get_variable("w", initializer=3.0)
        y = tf.identity(w * x + 1.0, name="y")
        asset = tf.constant(str(vocab), name="vocab_path")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset)
        table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
        words = v1.placeholder(tf.string, [None], name="words")
        ids = table.lookup(words)
        examples = v1.placeholder(tf.string, [None], name="examples")
        parsed = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        scores = w * parsed["x"] + 1.0
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                sess, ["serve"],
                signature_def_map={
                    "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
                    "lookup": v1.saved_model.predict_signature_def({"words": words}, {"ids": ids}),
                    "classify_x": v1.saved_model.classification_signature_def(examples, None, scores),
                },
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                main_op=v1.tables_initializer(),
            )
            builder.save()
    vocab.unlink()
    return path


@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tf1")
    return build_tf1_model(root / "tf1_model" / "1", root)


def example(x: float) -> bytes:
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
    return tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString()


def test_tf1_saved_model_restores_variables_runs_main_op_and_reads_its_asset(tf1_model):
    servable = Servable("tf1_model", 1, tf1_model)
    sig = servable.signature("")
    np.testing.assert_allclose(servable.run(sig, {"x": np.array([1.0, 2.0], np.float32)})["y"], [4.0, 7.0])
    words = np.array([b"dog", b"espresso_cup", b"unicorn"], dtype=object)
    np.testing.assert_array_equal(servable.run(servable.signature("lookup"), {"words": words})["ids"], [1, 2, -1])
    core = InferenceCore(manager=None)
    result = asyncio.run(core.classify(ModelRef("tf1_model", signature_name="classify_x"), [example(1.0), example(0.5)],
                                       servable=servable))
    core.close()
    assert [[round(s, 4) for _, s in row] for row in result.value] == [[4.0], [2.5]]


def test_dtype_mismatch_gets_the_session_runs_message(tf1_model):
    servable = Servable("tf1_model", 1, tf1_model)
    with pytest.raises(InvalidArgument, match=r"^Expects arg\[0\] to be float but double is provided$"):
        servable.run(servable.signature(""), {"x": np.array([1.0])})


def test_missing_tags_pb_and_corrupt_pb_fail_with_the_loaders_codes(tf1_model, tmp_path):
    with pytest.raises(NotFound, match=r"Could not find meta graph def matching supplied tags: \{ gpu \}"):
        Servable("m", 1, tf1_model, tags=("gpu",))
    with pytest.raises(NotFound, match="Could not find SavedModel .pb or .pbtxt at supplied export directory path"):
        Servable("m", 1, tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff garbage")
    with pytest.raises(DataLoss, match="as binary proto"):
        Servable("m", 1, tmp_path)


def save_keras_wrapped_the_old_way(path: Path) -> None:
    """The export pattern this project used before (a tf.Module tracking a Keras 3 model whose traced function
    captures the backing variables): TF2's loader runs it, TF Serving's does not."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="dense")])

    class Wrapper(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.model(x)}

    module = Wrapper()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})


def test_a_model_only_tf2s_loader_can_run_fails_here_as_in_tf_serving(tmp_path):
    path = tmp_path / "old" / "1"
    save_keras_wrapped_the_old_way(path)
    x = np.ones((1, 2), np.float32)
    assert tf.saved_model.load(str(path)).signatures["serving_default"](x=x)["y"].shape == (1, 3)
    servable = Servable("old", 1, path)  # loads, as in tensorflow_model_server…
    with pytest.raises(FailedPrecondition, match="Could not find variable .*dense/"):  # …and every request fails
        servable.run(servable.signature(""), {"x": x})


def test_thread_flags_follow_tf_servings_precedence():
    from serving.flags import ServerOptions
    from serving.server import session_options

    assert session_options(ServerOptions(tensorflow_session_parallelism=3)).intra_op_parallelism == 3
    mixed = session_options(ServerOptions(tensorflow_intra_op_parallelism=2, tensorflow_session_parallelism=5))
    assert (mixed.intra_op_parallelism, mixed.inter_op_parallelism) == (2, 0)
    with pytest.raises(InvalidArgument, match="You cannot configure all"):
        session_options(ServerOptions(tensorflow_intra_op_parallelism=1, tensorflow_inter_op_parallelism=1,
                                      tensorflow_session_parallelism=1))
    config = session_options(ServerOptions(tensorflow_intra_op_parallelism=2)).config_proto()
    assert config.intra_op_parallelism_threads == 2 and config.inter_op_parallelism_threads == 0


@pytest.mark.e2e
def test_tf1_saved_model_serves_over_rest_and_grpc(server_kind, tf1_model, tmp_path):
    with serving(server_kind, "tf1_model", tf1_model.parent, tmp_path) as server:
        r = requests.post(f"{server.rest}/v1/models/tf1_model:predict", json={"instances": [1.0, 2.0]}, timeout=30)
        assert r.status_code == 200 and r.json() == {"predictions": [4.0, 7.0]}
        r = requests.post(f"{server.rest}/v1/models/tf1_model:predict",
                          json={"signature_name": "lookup", "instances": ["cat", "espresso_cup"]}, timeout=30)
        assert r.json() == {"predictions": [0, 2]}
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "tf1_model"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([0.5], np.float32)))
            assert tf.make_ndarray(stub.Predict(req, timeout=30).outputs["y"]).tolist() == [2.5]
            creq = classification_pb2.ClassificationRequest()
            creq.model_spec.name, creq.model_spec.signature_name = "tf1_model", "classify_x"
            creq.input.example_list.examples.add().ParseFromString(example(2.0))
            resp = stub.Classify(creq, timeout=30)
            assert [c.score for c in resp.result.classifications[0].classes] == [7.0]
