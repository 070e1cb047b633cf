"""InferenceCore: one async entry point per API over the Runner protocol (direct runner or batch scheduler)."""

import asyncio

import numpy as np
import pytest

from serving.core.batching import BatchingOptions, BatchScheduler
from serving.core.inference import InferenceCore, ModelRef
from serving.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.serving.core.test_batching import SIG, FakeServable


class OneModel:
    """The part of ModelManager the core uses: one servable under one name."""

    def __init__(self, servable):
        self._servable = servable
        servable.version = 7
        servable.signature = self._signature
        servable.signatures = {"serving_default": SIG}

    @staticmethod
    def _signature(name):
        if name not in ("", "serving_default"):
            raise FailedPrecondition(f'Serving signature key "{name}" not found.')
        return SIG

    def servable(self, name, version=None, label=None):
        if name != self._servable.name:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return self._servable


class Requests:
    """Stands in for ServerMetrics.request: records (model, api, entrypoint, status)."""

    def __init__(self):
        self.seen = []

    def request(self, model_name, api, entrypoint):
        import contextlib

        @contextlib.contextmanager
        def scope():
            try:
                yield
            except Exception as e:
                self.seen.append((model_name, api, entrypoint, type(e).__name__))
                raise
            self.seen.append((model_name, api, entrypoint, "OK"))

        return scope()


def test_predict_without_batching_runs_on_the_cores_pool_and_reports_runtime():
    servable, runtimes = FakeServable(), []
    core = InferenceCore(OneModel(servable), on_runtime=lambda *a: runtimes.append(a))
    try:
        result = asyncio.run(core.predict(ModelRef("fake"), {"x": np.ones((2, 2), np.float32)}))
    finally:
        core.close()
    assert result.servable is servable and result.signature is SIG
    np.testing.assert_array_equal(result.value["y"], np.full((2, 2), 2.0))
    assert [(name, api) for name, api, _ in runtimes] == [("fake", "predict")]


def test_predict_with_a_batcher_merges_concurrent_requests_and_keeps_the_servable_in_the_result():
    servable = FakeServable()
    batcher = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=100_000))
    core = InferenceCore(OneModel(servable), runner=batcher)

    async def three():
        return await asyncio.gather(*(core.predict(ModelRef("fake"), {"x": np.full((1, 2), i, np.float32)}, ("y",))
                                      for i in range(3)))

    try:
        results = asyncio.run(three())
    finally:
        core.close()
    assert servable.batches == [3]
    assert [r.value["y"][0, 0] for r in results] == [0.0, 2.0, 4.0]
    assert all(r.servable.version == 7 and set(r.value) == {"y"} for r in results)


def test_a_decoder_runs_after_the_model_lookup_and_its_errors_are_counted_under_the_entrypoint():
    metrics, decoded = Requests(), []
    core = InferenceCore(OneModel(FakeServable()), metrics=metrics)

    def decode(servable):
        decoded.append(servable.name)
        raise InvalidArgument("tensor parsing error: x")

    try:
        with pytest.raises(NotFound, match="other"):
            asyncio.run(core.predict(ModelRef("other"), decode, entrypoint="GRPC"))
        assert decoded == []  # NOT_FOUND comes before the inputs are looked at, as in TF Serving
        with pytest.raises(InvalidArgument, match="parsing"):
            asyncio.run(core.predict(ModelRef("fake"), decode, entrypoint="REST", decode_in_pool=True))
        with pytest.raises(FailedPrecondition, match="nope"):
            asyncio.run(core.predict(ModelRef("fake", signature_name="nope"), {"x": np.ones((1, 2), np.float32)}))
        with pytest.raises(InvalidArgument, match="Missing ModelSpec name"):
            asyncio.run(core.predict(ModelRef(""), {"x": np.ones((1, 2), np.float32)}, entrypoint="GRPC"))
    finally:
        core.close()
    assert decoded == ["fake"]
    # TF Serving's API label: gRPC method names, REST verbs; a call without an entrypoint (warmup) is not counted.
    assert metrics.seen == [("other", "Predict", "GRPC", "NotFound"), ("fake", "predict", "REST", "InvalidArgument"),
                            ("", "Predict", "GRPC", "InvalidArgument")]


def test_input_errors_come_back_before_anything_runs_with_either_runner():
    for runner in (None, BatchScheduler(BatchingOptions(max_batch_size=4))):
        servable = FakeServable()
        core = InferenceCore(OneModel(servable), runner=runner)
        try:
            with pytest.raises(InvalidArgument, match="input size does not match signature"):
                asyncio.run(core.predict(ModelRef("fake"), {"z": np.ones((1, 2), np.float32)}))
            with pytest.raises(InvalidArgument, match="output tensor alias not found in signature: q"):
                asyncio.run(core.predict(ModelRef("fake"), {"x": np.ones((1, 2), np.float32)}, ("q",)))
        finally:
            core.close()
        assert servable.batches == []


def test_a_request_declaring_more_rows_than_a_batch_is_refused_before_it_is_decoded():
    batcher = BatchScheduler(BatchingOptions(max_batch_size=32))
    core = InferenceCore(OneModel(FakeServable()), runner=batcher)
    decoded = []

    def decode(servable):  # a 67-byte gRPC request declaring [20000, 32, 32, 3] would fill 61 M floats here
        decoded.append(servable.name)
        return {"x": np.ones((1, 2), np.float32)}

    try:
        with pytest.raises(InvalidArgument, match="Task size 20000 is larger than maximum input batch size 32"):
            asyncio.run(core.predict(ModelRef("fake"), decode, declared=(["x"], 20000)))
        assert decoded == []
        # Where the request would fail earlier in TF Serving (other aliases, another signature), decoding and the
        # usual checks answer as before.
        with pytest.raises(InvalidArgument, match="input size does not match signature"):
            asyncio.run(core.predict(ModelRef("fake"), lambda s: {"z": np.ones((1, 2), np.float32)},
                                     declared=(["z"], 20000)))
        with pytest.raises(FailedPrecondition, match="nope"):
            asyncio.run(core.predict(ModelRef("fake", signature_name="nope"), decode, declared=(["x"], 20000)))
        assert asyncio.run(core.predict(ModelRef("fake"), decode, declared=(["x"], 1))).value["y"].shape == (1, 2)
    finally:
        core.close()
    assert decoded == ["fake", "fake"]


def test_without_batching_declared_rows_set_no_limit():
    core = InferenceCore(OneModel(FakeServable()))
    try:
        result = asyncio.run(core.predict(ModelRef("fake"), lambda s: {"x": np.ones((40, 2), np.float32)},
                                          declared=(["x"], 40)))
    finally:
        core.close()
    assert result.value["y"].shape == (40, 2)
