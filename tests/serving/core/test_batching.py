"""BatchScheduler: merging, padding, per-caller rows, queue-full, deadlines (a fake servable records batches)."""

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from serving.core.batching import BatchingOptions, BatchScheduler
from serving.errors import DeadlineExceeded, InvalidArgument, Unavailable
from serving.lifecycle.servable import Signature, TensorSpec


@dataclass
class FakeServable:
    """y = 2x, n = the batch's row count, recording every batch's size; callers send rows that all differ
    (`rows`), so a row given to the wrong caller, in the wrong order or a padding row kept shows."""

    name: str = "fake"
    delay: float = 0.0

    def __post_init__(self):
        self.batches: list[int] = []
        self.running = threading.Event()  # set once the first batch runs

    def execute(self, signature, inputs, wanted=None):
        x = inputs["x"]
        self.batches.append(len(x))
        self.running.set()
        time.sleep(self.delay)
        return {"y": x * 2, "n": np.full(len(x), len(x), np.int64)}


SIG = Signature("serving_default", "tensorflow/serving/predict",
                {"x": TensorSpec("x", "x:0", 1, np.dtype(np.float32), (-1, 2))},
                {"y": TensorSpec("y", "y:0", 1, np.dtype(np.float32), (-1, 2)),
                 "n": TensorSpec("n", "n:0", 9, np.dtype(np.int64), (-1,))})


def call_many(scheduler, servable, xs, output_filter=()):
    results = [None] * len(xs)

    def one(i):
        try:
            results[i] = scheduler.submit(servable, SIG, {"x": xs[i]}, output_filter).result(30)
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def rows(i, n=1):
    """n rows, each unique to caller i and to its position: [[100i, 100i + 0.5], [100i + 1, 100i + 1.5], ...]."""
    first = 100.0 * i + np.arange(n, dtype=np.float32)
    return np.stack([first, first + 0.5], axis=1).astype(np.float32)


def test_the_rows_helper_gives_every_row_its_own_values():
    # The row-order checks below rely on this: no two rows of one caller or of two callers are equal.
    all_rows = np.concatenate([rows(i, 3) for i in range(4)])
    assert len({tuple(r) for r in all_rows}) == len(all_rows) == 12


def test_concurrent_requests_are_merged_and_each_caller_gets_its_rows():
    servable = FakeServable(delay=0.05)
    s = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1))
    try:
        xs = [rows(i, n=1 + i % 3) for i in range(12)]
        results = call_many(s, servable, xs)
    finally:
        s.stop()
    for x, r in zip(xs, results, strict=True):
        assert not isinstance(r, Exception), r
        np.testing.assert_array_equal(r["y"], x * 2)
    assert all(b <= 8 for b in servable.batches)
    assert sum(servable.batches) == sum(len(x) for x in xs)


def test_a_full_batch_closes_at_once_with_every_caller_in_it():
    # 1 + 3 + 2 + 2 rows reach max_batch_size 8: one batch, closed when full (the 10 s timeout never matters).
    servable = FakeServable()
    s = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=10_000_000, num_batch_threads=1))
    try:
        sizes = (1, 3, 2, 2)
        futures_ = [s.submit(servable, SIG, {"x": rows(i, n)}) for i, n in enumerate(sizes)]
        results = [f.result(timeout=5) for f in futures_]
    finally:
        s.stop()
    assert servable.batches == [8]
    for (i, n), out in zip(enumerate(sizes), results, strict=True):
        np.testing.assert_array_equal(out["y"], rows(i, n) * 2)
        assert out["n"].tolist() == [8] * n


def test_padding_to_allowed_sizes_is_stripped():
    servable = FakeServable(delay=0.02)
    s = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=20_000, num_batch_threads=1,
                                       allowed_batch_sizes=(4, 8)))
    try:
        (r,) = call_many(s, servable, [rows(7, n=3)])
    finally:
        s.stop()
    assert servable.batches == [4]  # 3 rows padded to 4
    assert r["y"].shape == (3, 2) and r["n"].tolist() == [4, 4, 4]
    np.testing.assert_array_equal(r["y"], rows(7, 3) * 2)  # the padding row (a copy of row 0) stripped


def test_output_filter_and_oversized_task():
    s = BatchScheduler(BatchingOptions(max_batch_size=4, num_batch_threads=1))
    try:
        (r,) = call_many(s, FakeServable(), [rows(1, 2)], output_filter=("y",))
        assert list(r) == ["y"]
        with pytest.raises(InvalidArgument, match="Task size 5 is larger than maximum input batch size 4"):
            s.submit(FakeServable(), SIG, {"x": rows(1, 5)})
    finally:
        s.stop()


def test_full_queue_answers_unavailable_and_loses_nothing_else():
    servable = FakeServable(delay=0.3)
    s = BatchScheduler(BatchingOptions(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1,
                                       max_enqueued_batches=2))
    try:
        results = call_many(s, servable, [rows(i) for i in range(8)])
    finally:
        s.stop()
    full = [r for r in results if isinstance(r, Unavailable)]
    ok = [r for r in results if isinstance(r, dict)]
    assert full and "queue" in str(full[0]) and "full" in str(full[0])
    assert len(ok) + len(full) == 8 and len(ok) == len(servable.batches)


def test_deadline_passes_while_queued():
    servable = FakeServable(delay=0.4)
    s = BatchScheduler(BatchingOptions(max_batch_size=1, num_batch_threads=1))
    try:
        first = s.submit(servable, SIG, {"x": rows(0)})
        assert servable.running.wait(5)  # the only batch thread is busy for 0.4 s
        with pytest.raises(DeadlineExceeded):
            s.submit(servable, SIG, {"x": rows(1)}, deadline=time.perf_counter() + 0.1).result(5)
        first.result(5)
    finally:
        s.stop()
    assert servable.batches == [1]  # the late request never ran


def test_options_from_proto_use_tf_serving_defaults_for_unset_fields():
    from serving.protos import serving_config_pb2

    p = serving_config_pb2.BatchingParameters()
    p.max_batch_size.value = 16
    o = BatchingOptions.from_proto(p)
    assert o.max_batch_size == 16 and o.batch_timeout_micros == 0 and o.max_enqueued_batches == 10


def test_submitted_requests_from_one_thread_share_a_batch_and_resolve_to_their_own_rows():
    # What an event loop does: queue several requests without a thread waiting on each, then await the futures.
    servable = FakeServable()
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=6, batch_timeout_micros=10_000_000))
    try:
        futures_ = [scheduler.submit(servable, SIG, {"x": rows(i, n)}) for i, n in ((1, 1), (2, 3), (3, 2))]
        results = [f.result(timeout=5) for f in futures_]
    finally:
        scheduler.stop()
    assert servable.batches == [6]
    for (i, n), out in zip(((1, 1), (2, 3), (3, 2)), results, strict=True):
        np.testing.assert_array_equal(out["y"], rows(i, n) * 2)
        assert out["n"].tolist() == [6] * n


def test_submitted_request_gets_only_the_filtered_outputs_or_an_error_for_an_unknown_alias():
    servable = FakeServable()
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=4, batch_timeout_micros=1000))
    try:
        only_y = scheduler.submit(servable, SIG, {"x": rows(1)}, ("y",)).result(timeout=5)
        with pytest.raises(InvalidArgument, match="nope"):  # refused before it is queued: nothing runs for it
            scheduler.submit(servable, SIG, {"x": rows(2)}, ("nope",))
    finally:
        scheduler.stop()
    assert set(only_y) == {"y"}


def test_a_queued_submission_cannot_be_cancelled_and_still_gets_its_answer():
    servable = FakeServable()
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=4, batch_timeout_micros=50_000))
    try:
        future = scheduler.submit(servable, SIG, {"x": rows(5)})
        assert not future.cancel()  # an event loop cancelling its await must not break the batch thread
        np.testing.assert_array_equal(future.result(timeout=5)["y"], rows(5) * 2)
    finally:
        scheduler.stop()


class PickyServable(FakeServable):
    """Fails a whole batch with INVALID_ARGUMENT when any row is negative (like a corrupt JPEG in a merged batch)."""

    def execute(self, signature, inputs, wanted=None):
        if (inputs["x"] < 0).any():
            self.batches.append(len(inputs["x"]))
            raise InvalidArgument("Invalid JPEG data or crop window")
        return super().execute(signature, inputs, wanted)


def test_a_bad_request_in_a_merged_batch_fails_alone():
    servable = PickyServable(delay=0.01)
    # The batch closes when its 3 rows are in (never by the 10 s timeout), so the three are merged for sure.
    s = BatchScheduler(BatchingOptions(max_batch_size=3, batch_timeout_micros=10_000_000, num_batch_threads=1))
    try:
        results = call_many(s, servable, [rows(1), rows(-1), rows(3)])
    finally:
        s.stop()
    assert isinstance(results[1], InvalidArgument) and "Invalid JPEG" in results[1].message
    np.testing.assert_array_equal(results[0]["y"], rows(1) * 2)
    np.testing.assert_array_equal(results[2]["y"], rows(3) * 2)
    assert servable.batches[0] == 3  # merged first, then each request alone


def test_an_unloaded_servable_is_not_kept_alive_by_its_batch_queue():
    import gc
    import weakref

    servable = FakeServable()
    ref = weakref.ref(servable)
    s = BatchScheduler(BatchingOptions(max_batch_size=4, batch_timeout_micros=1000, num_batch_threads=1))
    try:
        results = call_many(s, servable, [rows(1), rows(2)])
        for i, r in zip((1, 2), results, strict=True):
            np.testing.assert_array_equal(r["y"], rows(i) * 2)
        assert s._queues == {}  # the batch thread drops a queue it has emptied
        del servable
        gc.collect()
        assert ref() is None  # before: every version ever batched stayed in memory (~59 MiB per hot swap)
    finally:
        s.stop()
