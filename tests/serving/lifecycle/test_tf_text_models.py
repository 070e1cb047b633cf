"""Models that use TF Text's ops load and serve, as in the tensorflow/serving image (which links those ops into
tensorflow_model_server). The model is exported here; the server is a separate process, so it must register the
ops itself before importing the graph."""

from __future__ import annotations

import pytest
import requests

from tests.serving.conftest import SERVER_KINDS, start_server

pytestmark = pytest.mark.e2e


def export_token_counter(path) -> set[str]:
    """A SavedModel counting whitespace tokens with TF Text's tokenizer; returns its TF Text op types."""
    import tensorflow as tf
    import tensorflow_text as text
    from tensorflow.core.protobuf import saved_model_pb2

    class TokenCounter(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = text.WhitespaceTokenizer()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
        def count(self, sentences):
            tokens = self.tokenizer.tokenize(sentences)
            return {"tokens": tf.cast(tokens.row_lengths(), tf.float32)}

    module = TokenCounter()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.count})
    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    return {op for op in ops if op.startswith("TFText>")}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_model_with_tf_text_ops_serves(kind, tmp_path):
    text_ops = export_token_counter(tmp_path / "token_counter" / "1")
    assert text_ops, "the model should use TF Text's own ops"
    args = ["--model_name=token_counter", f"--model_base_path={tmp_path / 'token_counter'}"]
    with start_server(kind, args, tmp_path) as server:
        server.wait_available("token_counter")
        reply = requests.post(f"{server.rest}/v1/models/token_counter:predict",
                              json={"instances": ["the quick brown fox", "hello", ""]}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [4.0, 1.0, 0.0]}
