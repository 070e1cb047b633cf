"""Dynamic batching as TF Serving's BatchingParameters describe it (transport-free).

Concurrent requests for the same servable, signature and per-row input shapes queue together; a batch thread takes
up to `max_batch_size` rows as soon as a batch is full or its oldest request has waited `batch_timeout_micros`,
pads to the next `allowed_batch_sizes` entry, runs the signature once, strips the padding and hands every caller
exactly its own rows. A full queue (`max_enqueued_batches`) answers UNAVAILABLE; a request whose deadline passes
while queued answers DEADLINE_EXCEEDED and is never run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field

import numpy as np

from serving.errors import DeadlineExceeded, InvalidArgument, Unavailable, as_serving_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingOptions:
    """Effective parameters (TF Serving's defaults where the file leaves a field unset)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, p) -> BatchingOptions:
        """From a BatchingParameters message."""
        d = cls()
        return cls(
            max_batch_size=p.max_batch_size.value if p.HasField("max_batch_size") else d.max_batch_size,
            batch_timeout_micros=p.batch_timeout_micros.value if p.HasField("batch_timeout_micros")
            else d.batch_timeout_micros,
            max_enqueued_batches=p.max_enqueued_batches.value if p.HasField("max_enqueued_batches")
            else d.max_enqueued_batches,
            num_batch_threads=p.num_batch_threads.value if p.HasField("num_batch_threads") else d.num_batch_threads,
            allowed_batch_sizes=tuple(p.allowed_batch_sizes),
            pad_variable_length_inputs=p.pad_variable_length_inputs,
        )


@dataclass(eq=False)
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    deadline: float | None
    wanted: list[str] = field(default_factory=list)
    api: str = "predict"
    enqueued: float = field(default_factory=time.perf_counter)
    future: futures.Future = field(default_factory=futures.Future)

    def fail(self, error: BaseException) -> None:
        self.future.set_exception(error)

    def finish(self, outputs: dict[str, np.ndarray]) -> None:
        """Deliver this request's rows, only the outputs it asked for."""
        self.future.set_result({k: outputs[k] for k in self.wanted})


@dataclass
class _Queue:
    servable: object
    signature: object
    tasks: deque = field(default_factory=deque)
    rows: int = 0


class BatchScheduler:
    """A `serving.core.runners.Runner` that merges concurrent requests into batches run by its own threads."""

    def __init__(self, options: BatchingOptions, on_queued=None, on_batch=None, on_runtime=None, on_scheduled=None):
        if options.max_batch_size < 1 or options.num_batch_threads < 1:
            raise InvalidArgument("max_batch_size and num_batch_threads must be at least 1")
        self.options = options
        self._queues: dict[tuple, _Queue] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._on_queued = on_queued or (lambda seconds: None)
        self._on_batch = on_batch or (lambda size, padded: None)
        self._on_scheduled = on_scheduled or (lambda rows: None)
        self._on_runtime = on_runtime or (lambda model_name, api, seconds: None)
        self._threads = [threading.Thread(target=self._worker, name=f"batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop the batch threads (queued tasks are failed with UNAVAILABLE)."""
        with self._cond:
            self._stopped = True
            for q in self._queues.values():
                for task in q.tasks:
                    task.fail(Unavailable("server is shutting down"))
                q.tasks.clear()
            self._cond.notify_all()

    def check_rows(self, rows: int) -> None:
        """A request of more rows than one batch holds is refused (BatchingSession's check, before scheduling)."""
        if rows > self.options.max_batch_size:
            raise InvalidArgument(f"Task size {rows} is larger than maximum input batch size "
                                  f"{self.options.max_batch_size}")

    def _key(self, servable, signature, inputs: dict[str, np.ndarray]) -> tuple:
        shapes = tuple(sorted((k, v.dtype.str, v.shape[1:] if not self.options.pad_variable_length_inputs
                               else len(v.shape)) for k, v in inputs.items()))
        return (id(servable), signature.name, shapes)

    def submit(self, servable, signature, inputs, output_filter=(), deadline: float | None = None,
               api: str = "predict") -> futures.Future:
        """Check and queue one request; the future resolves to its rows of the (filtered) outputs.

        Callers on an event loop await the future instead of parking a thread per request: the batch thread
        completes every future of a batch in one pass.
        """
        rows = {v.shape[0] if v.ndim else None for v in inputs.values()}
        if len(rows) != 1 or None in rows:
            raise InvalidArgument("batching needs every input to have the same 0th (batch) dimension")
        n = rows.pop()
        for _ in inputs:  # as BatchingSession::ComputeInputSize: each input's batch size, before scheduling
            self._on_scheduled(n)
        self.check_rows(n)
        from serving.lifecycle.servable import check_inputs, check_output_filter

        check_inputs(signature, inputs)
        task = _Task(inputs, n, deadline, check_output_filter(signature, output_filter), api)
        task.future.set_running_or_notify_cancel()  # queued work cannot be cancelled, only answered
        key = self._key(servable, signature, inputs)
        with self._cond:
            if self._stopped:
                raise Unavailable("server is shutting down")
            q = self._queues.setdefault(key, _Queue(servable, signature))
            open_batches = -(-(q.rows + n) // self.options.max_batch_size)
            if open_batches > self.options.max_enqueued_batches:
                raise Unavailable("The batch scheduling queue to which this task was submitted is full")
            q.tasks.append(task)
            q.rows += n
            self._cond.notify()
        return task.future

    # ---- batch threads --------------------------------------------------------------------------------------
    def _take_batch(self) -> tuple[_Queue, list[_Task]] | None:
        """Under the lock: a ready batch, or None (and how long to wait is decided by the caller)."""
        now = time.perf_counter()
        timeout = self.options.batch_timeout_micros / 1e6
        for key, q in list(self._queues.items()):
            while q.tasks and q.tasks[0].deadline is not None and q.tasks[0].deadline < now:
                late = q.tasks.popleft()
                q.rows -= late.rows
                late.fail(DeadlineExceeded("deadline exceeded while waiting in the batch queue"))
            if not q.tasks:
                # An empty queue is dropped: it holds its servable, and an unloaded version must not stay alive
                # (its Session and graph) through a queue nobody will use again.
                del self._queues[key]
                continue
            if q.rows >= self.options.max_batch_size or now - q.tasks[0].enqueued >= timeout:
                batch, rows = [], 0
                while q.tasks and rows + q.tasks[0].rows <= self.options.max_batch_size:
                    t = q.tasks.popleft()
                    rows += t.rows
                    batch.append(t)
                q.rows -= rows
                if not q.tasks:
                    del self._queues[key]
                return q, batch
        return None

    def _next_wakeup(self) -> float | None:
        timeout = self.options.batch_timeout_micros / 1e6
        oldest = [q.tasks[0].enqueued for q in self._queues.values() if q.tasks]
        return max(min(oldest) + timeout - time.perf_counter(), 0.0) if oldest else None

    def _worker(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    ready = self._take_batch()
                    if ready:
                        break
                    self._cond.wait(self._next_wakeup())
            self._run_batch(*ready)

    def _run_alone(self, q: _Queue, tasks: list[_Task]) -> None:
        """Run each task of a failed batch by itself and answer it with its own outputs or error."""
        logger.info("a batch of %d requests failed on input; re-running them one by one", len(tasks))
        for t in tasks:
            try:
                outputs = q.servable.execute(q.signature, t.inputs)
            except Exception as e:
                t.fail(as_serving_error(e))
                continue
            t.finish(outputs)

    def _padded_size(self, rows: int) -> int:
        for size in self.options.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def _run_batch(self, q: _Queue, tasks: list[_Task]) -> None:
        started = time.perf_counter()
        for t in tasks:
            self._on_queued(started - t.enqueued)
        try:
            rows = sum(t.rows for t in tasks)
            padded = self._padded_size(rows)
            inputs = {}
            for name in tasks[0].inputs:
                parts = [t.inputs[name] for t in tasks]
                if self.options.pad_variable_length_inputs:
                    parts = _pad_to_common_shape(parts)
                merged = parts[0] if len(parts) == 1 else np.concatenate(parts)
                if padded > rows:  # TF Serving pads with copies of the first row
                    merged = np.concatenate([merged, np.repeat(merged[:1], padded - rows, axis=0)])
                inputs[name] = merged
            self._on_batch(rows, padded)
            run_started = time.perf_counter()
            # Each request was checked when it was queued; run every output any of them wants.
            outputs = q.servable.execute(q.signature, inputs)
            for t in tasks:
                self._on_runtime(q.servable.name, t.api, time.perf_counter() - run_started)
            for name, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != padded:
                    raise InvalidArgument(f"Batched output tensor {name!r} has 0th dimension "
                                          f"{value.shape[0] if value.ndim else 'scalar'}, expected {padded}")
        except Exception as e:
            err = as_serving_error(e)
            if err.code == "INVALID_ARGUMENT" and len(tasks) > 1:
                # One request's bad input (a corrupt JPEG) fails a merged batch as a whole; TF Serving answers every
                # request of that batch with the error. Here each request is re-run alone, so only the offending
                # one gets it.
                self._run_alone(q, tasks)
                return
            for t in tasks:
                t.fail(err)
            return
        offset = 0
        for t in tasks:
            t.finish({name: value[offset:offset + t.rows] for name, value in outputs.items()})
            offset += t.rows


def _pad_to_common_shape(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Zero-pad every part (beyond the batch dimension) to the largest shape among them."""
    target = tuple(max(p.shape[i] for p in parts) for i in range(1, parts[0].ndim))
    out = []
    for p in parts:
        pad = [(0, 0)] + [(0, t - s) for s, t in zip(p.shape[1:], target, strict=True)]
        out.append(np.pad(p, pad) if any(b for _, b in pad) else p)
    return out
