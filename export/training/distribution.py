"""Which `tf.distribute` strategy a training run uses: `--distribute` and the `TF_CONFIG` environment variable.

`auto` follows TensorFlow's convention: a `TF_CONFIG` whose cluster has more than one worker (chief included) selects
`MultiWorkerMirroredStrategy`; otherwise the default (one-device) strategy. `mirrored` is `MirroredStrategy` over
this machine's devices, `multi-worker` forces `MultiWorkerMirroredStrategy` (one worker without `TF_CONFIG`),
`none` the default strategy. The batch size of the command line is the **global** batch: each of the N replicas
gets batch/N per step, so steps per epoch and the learning-rate schedule are those of a one-process run.

Only the chief (task `chief`, or worker 0 when the cluster has no chief) publishes; the other workers train, then
stop. Creating `MultiWorkerMirroredStrategy` blocks until every worker of `TF_CONFIG` is up: a watchdog ends the
process (SIGKILL, after a clear error message) when that has not happened within `--worker-timeout` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

WORKER_TIMEOUT_EXIT_CODE = 3
# tf.distribute's public names (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)
STRATEGY_NAMES = {"none": "default", "mirrored": "MirroredStrategy", "multi-worker": "MultiWorkerMirroredStrategy"}


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the `TF_CONFIG` cluster."""

    workers: tuple[str, ...]  # every training task's address: the chief first (if any), then the workers
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The task that publishes: the chief, or worker 0 of a cluster without one (TensorFlow's rule)."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not self.has_chief)

    @property
    def name(self) -> str:
        return f"{self.task_type}:{self.task_index}"

    @property
    def worker_id(self) -> int:
        """This task's position among all training tasks (the chief first): its input shard."""
        return self.task_index + (1 if self.has_chief and self.task_type == "worker" else 0)

    @property
    def address(self) -> str:
        return self.workers[self.worker_id]


def read_tf_config(environ: Mapping[str, str]) -> ClusterTask | None:
    """The cluster and task of `TF_CONFIG` (None when unset or empty); ValueError naming what is wrong otherwise."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chief = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
        task_type, task_index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not a cluster and task description ({e!r}): {text[:200]}") from e
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise ValueError(f"TF_CONFIG: cluster roles {unsupported} are not supported (synchronous training on "
                         "'chief' and 'worker' tasks only; parameter servers are not)")
    if len(chief) > 1:
        raise ValueError(f"TF_CONFIG: at most one chief, got {chief}")
    members = {"chief": chief, "worker": workers}
    if task_type not in members or not 0 <= task_index < len(members[task_type]):
        raise ValueError(f"TF_CONFIG: task {task_type}:{task_index} is not in the cluster {cluster}")
    return ClusterTask(tuple(chief + workers), task_type, task_index, has_chief=bool(chief))


@dataclass
class Distribution:
    """The strategy a run trains under, and what the metadata records of it."""

    strategy: Any  # a tf.distribute.Strategy
    kind: str  # the resolved --distribute value
    workers: int
    task: ClusterTask | None

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        return self.task is None or self.task.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.kind == "multi-worker"

    @property
    def distributed(self) -> bool:
        """Whether the model is built under a strategy other than the default one."""
        return self.kind != "none"

    def metadata(self, global_batch: int) -> dict:
        return {"strategy": STRATEGY_NAMES[self.kind], "workers": self.workers, "replicas": self.replicas,
                "global_batch_size": global_batch, "per_replica_batch_size": global_batch / self.replicas,
                "task": self.task.name if self.task else None}


def resolve(kind: str, environ: Mapping[str, str] | None = None, worker_timeout_s: float = 300.0) -> Distribution:
    """Create the strategy for `--distribute kind` (auto, none, mirrored, multi-worker) and this `TF_CONFIG`."""
    environ = os.environ if environ is None else environ
    task = read_tf_config(environ)
    if kind == "auto":
        kind = "multi-worker" if task is not None and len(task.workers) > 1 else "none"
    import tensorflow as tf

    if kind == "none":
        if task is not None and len(task.workers) > 1:
            logger.warning("--distribute none with a %d-worker TF_CONFIG: this process trains alone", len(task.workers))
        return Distribution(tf.distribute.get_strategy(), kind, 1, None)
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        logger.info("MirroredStrategy over %d local device(s)", strategy.num_replicas_in_sync)
        return Distribution(strategy, kind, 1, None)
    if kind != "multi-worker":
        raise ValueError(f"--distribute {kind!r}: expected auto, none, mirrored or multi-worker")
    workers = len(task.workers) if task else 1
    if task is not None:
        logger.info("MultiWorkerMirroredStrategy: %s of %d workers (%s); waiting up to %.0f s for all of them",
                    task.name, workers, ", ".join(task.workers), worker_timeout_s)
    with _watchdog(task, worker_timeout_s):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _barrier(strategy)
    patch_keras_for_multi_worker()
    return Distribution(strategy, kind, workers, task)


class _watchdog:
    """Kills this process if the block has not finished within `seconds`: creating the strategy waits for every
    worker in TensorFlow's C++ code without a timeout and without releasing the GIL, so no thread of this process
    could act; a small watcher process does (`python -m export.training.distribution --watch`), and says why first.
    The process then ends with SIGKILL (exit status 137 in a shell)."""

    def __init__(self, task: ClusterTask | None, seconds: float):
        self.task, self.seconds = task, seconds
        self.watcher: subprocess.Popen | None = None

    def __enter__(self):
        if self.task is not None and len(self.task.workers) > 1:
            others = [a for a in self.task.workers if a != self.task.address]
            self.watcher = subprocess.Popen(
                [sys.executable, "-m", "export.training.distribution", "--watch", str(os.getpid()),
                 str(self.seconds), *others], stdin=subprocess.PIPE)
        return self

    def __exit__(self, *exc):
        if self.watcher is not None:
            self.watcher.stdin.close()  # done in time: the watcher exits quietly
            self.watcher.wait()


def watch(parent: int, seconds: float, others: list[str]) -> int:
    """The watcher: wait for the parent to close our stdin (or die); after `seconds`, report and kill it."""
    ready, _, _ = select.select([sys.stdin], [], [], seconds)
    if ready:
        return 0
    down = [a for a in others if not _reachable(a)]
    sys.stderr.write(
        f"ERROR: the training cluster did not form within {seconds:g} s (--worker-timeout): "
        f"{len(down) or 'none'} of the other workers {' '.join(others)} "
        f"{'is' if len(down) == 1 else 'are'} not reachable{': ' + ', '.join(down) if down else ''}. "
        "Start every worker with the same cluster in TF_CONFIG and its own task index.\n")
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
    return 1


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False


def _barrier(strategy) -> None:
    """One all-reduce across every replica: returns once all workers have joined."""
    import tensorflow as tf

    @tf.function
    def count_replicas():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    logger.info("all %d replicas joined", int(count_replicas()))


_PATCHED = False


def patch_keras_for_multi_worker() -> None:
    """Two fixes Keras 3's TensorFlow trainer needs under MultiWorkerMirroredStrategy (keras-team/keras#20585):
    it builds the model from the first batch averaged across workers in eager mode (a collective on input data that
    fails), and averages each per-replica metric scalar over axis 0 (which a scalar has not). The model is built
    from this worker's first replica batch instead, and metric scalars are averaged across replicas as scalars.
    Applied once per process, and only when a multi-worker strategy is created."""
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    def local_batch(values, strategy):
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues)
            else v, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or not trainer._collective_all_reduce_multi_worker(
                self._distribute_strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = local_batch(next(it), self.distribute_strategy)
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues)
                else v, values)
        return original_reduce(values, strategy, reduction)

    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _PATCHED = True


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    sys.exit(watch(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))
