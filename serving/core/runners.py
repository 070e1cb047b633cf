"""How the core runs a signature: the `Runner` protocol and the direct (unbatched) runner.

`InferenceCore` hands every signature run to a runner and awaits the future it returns; the batch scheduler
(`serving.core.batching.BatchScheduler`) is the other runner. Both check a request's inputs and output filter when it is
submitted (so those errors come back at once) and report the model's compute time through `on_runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from typing import Protocol

import numpy as np

from serving.errors import DeadlineExceeded
from serving.lifecycle.servable import Servable, Signature, check_inputs, check_output_filter

Outputs = dict[str, np.ndarray]
OnRuntime = Callable[[str, str, float], None]  # (model_name, api, seconds)


class Runner(Protocol):
    """Runs one request's signature, now or merged with others; the future resolves to its (filtered) outputs."""

    def check_rows(self, rows: int) -> None:
        """Refuse a request of this many rows (0th dimension) before it is decoded, if the runner cannot take it."""
        ...

    def submit(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray],
               output_filter: tuple[str, ...] = (), deadline: float | None = None,
               api: str = "predict") -> futures.Future[Outputs]:
        """Check and start one request (`deadline`: a time.perf_counter() value)."""
        ...

    def stop(self) -> None:
        """Stop taking work; queued work is answered UNAVAILABLE."""
        ...


class DirectRunner:
    """Every request runs by itself on a thread of `pool` (the server without --enable_batching)."""

    def __init__(self, pool: futures.Executor, on_runtime: OnRuntime | None = None):
        self.pool = pool
        self._on_runtime = on_runtime or (lambda model_name, api, seconds: None)

    def check_rows(self, rows: int) -> None:
        """Any number of rows runs alone."""

    def submit(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray],
               output_filter: tuple[str, ...] = (), deadline: float | None = None,
               api: str = "predict") -> futures.Future[Outputs]:
        """Check the request, then run it on a pool thread."""
        check_inputs(signature, inputs)
        wanted = check_output_filter(signature, output_filter)
        return self.pool.submit(self._run, servable, signature, inputs, wanted, deadline, api)

    def _run(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray], wanted: list[str],
             deadline: float | None, api: str) -> Outputs:
        started = time.perf_counter()
        if deadline is not None and started > deadline:
            raise DeadlineExceeded("deadline exceeded while waiting for a worker thread")
        try:
            return servable.execute(signature, inputs, wanted)
        finally:
            self._on_runtime(servable.name, api, time.perf_counter() - started)

    def stop(self) -> None:
        """Nothing queued of its own: the pool's owner shuts the pool down."""
