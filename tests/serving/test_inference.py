"""InferenceCore.submit_predict: the future-based entry point the gRPC event loop uses."""

from concurrent import futures

import numpy as np
import pytest

from serving.batching import BatchingOptions, BatchScheduler
from serving.errors import FailedPrecondition, NotFound
from serving.inference import InferenceCore, ModelRef
from tests.serving.test_batching import SIG, FakeServable


class OneModel:
    """The part of ModelManager the core uses: one servable under one name."""

    def __init__(self, servable):
        self._servable = servable
        servable.version = 7
        servable.run = lambda signature, inputs, output_filter=(): servable.execute(signature, inputs)
        servable.signature = self._signature

    @staticmethod
    def _signature(name):
        if name not in ("", "serving_default"):
            raise FailedPrecondition(f'Serving signature key "{name}" not found.')
        return SIG

    def servable(self, name, version=None, label=None):
        if name != self._servable.name:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return self._servable


def test_submit_predict_without_batching_runs_on_the_given_executor():
    servable = FakeServable()
    core = InferenceCore(OneModel(servable))
    with futures.ThreadPoolExecutor(1) as pool:
        result = core.submit_predict(ModelRef("fake"), {"x": np.ones((2, 2), np.float32)}, executor=pool).result(5)
    assert result.servable is servable and result.signature is SIG
    np.testing.assert_array_equal(result.value["y"], np.full((2, 2), 2.0))


def test_submit_predict_with_a_batcher_needs_no_thread_and_keeps_the_servable_in_the_result():
    servable = FakeServable()
    batcher = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=100_000))
    core = InferenceCore(OneModel(servable), runner=batcher)
    try:
        pending = [core.submit_predict(ModelRef("fake"), {"x": np.full((1, 2), i, np.float32)}, ("y",))
                   for i in range(3)]
        results = [p.result(5) for p in pending]
    finally:
        batcher.stop()
    assert servable.batches == [3]
    assert [r.value["y"][0, 0] for r in results] == [0.0, 2.0, 4.0]
    assert all(r.servable.version == 7 and set(r.value) == {"y"} for r in results)


def test_submit_predict_raises_lookup_errors_at_once():
    core = InferenceCore(OneModel(FakeServable()))
    with pytest.raises(NotFound, match="other"):
        core.submit_predict(ModelRef("other"), {"x": np.ones((1, 2), np.float32)}, executor=None)
    with pytest.raises(FailedPrecondition, match="nope"):
        core.submit_predict(ModelRef("fake", signature_name="nope"), {"x": np.ones((1, 2), np.float32)})
