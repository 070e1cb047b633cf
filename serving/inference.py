"""Transport-free request handling: Predict, Classify, Regress, MultiInference, metadata and status.

The REST and gRPC layers turn their wire formats into these calls (numpy arrays, serialized tf.Examples) and back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import numpy as np

from serving.errors import InvalidArgument
from serving.model_manager import ModelManager, VersionStatus
from serving.servable import Servable, Signature

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"


@dataclass(frozen=True)
class ModelRef:
    """What a request names: model, optional version or label, signature ('' = serving_default)."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclass
class Result:
    """The servable that answered, the signature used and the payload."""

    servable: Servable
    signature: Signature
    value: object


Runner = Callable[..., dict[str, np.ndarray]]


def direct_runner(servable: Servable, signature: Signature, inputs, output_filter, deadline=None):
    """Run the signature in the calling thread (no batching)."""
    return servable.run(signature, inputs, output_filter)


class InferenceCore:
    """Resolves model references through the manager and runs signatures through `runner` (maybe batched)."""

    def __init__(self, manager: ModelManager, runner: Runner = direct_runner, on_runtime=None):
        self.manager = manager
        self.runner = runner
        self._on_runtime = on_runtime  # (model_name, api, seconds), for the runtime latency metric

    def _run(self, servable: Servable, signature: Signature, inputs, output_filter, deadline, api: str):
        if self.runner is not direct_runner:  # a batcher reports its own compute time (queueing excluded)
            return self.runner(servable, signature, inputs, output_filter, deadline=deadline)
        started = time.perf_counter()
        try:
            return self.runner(servable, signature, inputs, output_filter, deadline=deadline)
        finally:
            if self._on_runtime is not None:
                self._on_runtime(servable.name, api, time.perf_counter() - started)

    def resolve(self, ref: ModelRef) -> Servable:
        """The AVAILABLE servable a request refers to."""
        return self.manager.servable(ref.name, ref.version, ref.label)

    def predict(self, ref: ModelRef, inputs: dict[str, np.ndarray], output_filter: tuple[str, ...] = (),
                deadline: float | None = None) -> Result:
        """Run a predict signature (`deadline`: time.perf_counter() value, honoured while batched)."""
        servable = self.resolve(ref)
        return self.predict_on(servable, ref.signature_name, inputs, output_filter, deadline)

    def submit_predict(self, ref: ModelRef, inputs: dict[str, np.ndarray], output_filter: tuple[str, ...] = (),
                       deadline: float | None = None, executor: futures.Executor | None = None) -> futures.Future:
        """Start a Predict; the future resolves to its Result (errors in resolving the model raise here).

        With a batcher (a runner that has `submit`) the request is queued and no thread waits for it; otherwise it
        runs on `executor`. For transports on an event loop.
        """
        servable = self.resolve(ref)
        signature = servable.signature(ref.signature_name)
        submit = getattr(self.runner, "submit", None)
        if submit is None:
            if executor is None:
                raise ValueError("submit_predict without a batcher needs an executor")
            return executor.submit(self.predict_on, servable, ref.signature_name, inputs, output_filter, deadline)
        outer: futures.Future = futures.Future()
        outer.set_running_or_notify_cancel()

        def deliver(inner: futures.Future) -> None:
            error = inner.exception()
            if error is not None:
                outer.set_exception(error)
            else:
                outer.set_result(Result(servable, signature, inner.result()))

        submit(servable, signature, inputs, tuple(output_filter), deadline).add_done_callback(deliver)
        return outer

    def predict_on(self, servable: Servable, signature_name: str, inputs, output_filter=(), deadline=None) -> Result:
        """Predict on an already resolved servable (used by warmup too)."""
        signature = servable.signature(signature_name)
        outputs = self._run(servable, signature, inputs, tuple(output_filter), deadline, "predict")
        return Result(servable, signature, outputs)

    def _run_examples(self, servable: Servable, signature_name: str, examples: list[bytes], api: str) -> tuple:
        signature = servable.signature(signature_name)
        if len(signature.inputs) != 1:
            raise InvalidArgument(f"Expected one input Tensor, signature {signature.name!r} has "
                                  f"{len(signature.inputs)}")
        (alias, spec), = signature.inputs.items()
        if spec.np_dtype.kind != "O":
            raise InvalidArgument(f"signature {signature.name!r} input {alias!r} must be a string tensor of "
                                  f"serialized tf.Examples")
        if not examples:
            raise InvalidArgument("Input is empty: no examples given")
        batch = np.empty(len(examples), dtype=object)
        batch[:] = examples
        return signature, self._run(servable, signature, {alias: batch}, (), None, api)

    def classify_on(self, servable: Servable, signature_name: str, examples: list[bytes]) -> Result:
        """Classify serialized examples: per example a list of (label, score)."""
        signature, out = self._run_examples(servable, signature_name, examples, "classify")
        classes, scores = out.get("classes"), out.get("scores")
        if classes is None and scores is None:
            raise InvalidArgument(f"signature {signature.name!r} has neither 'classes' nor 'scores' outputs")
        n = len(examples)
        results = []
        for i in range(n):
            row_c = classes[i].reshape(-1) if classes is not None else None
            row_s = scores[i].reshape(-1) if scores is not None else None
            k = len(row_c) if row_c is not None else len(row_s)
            results.append([
                ((row_c[j].decode() if isinstance(row_c[j], bytes) else str(row_c[j])) if row_c is not None else "",
                 float(row_s[j]) if row_s is not None else 0.0)
                for j in range(k)
            ])
        return Result(servable, signature, results)

    def regress_on(self, servable: Servable, signature_name: str, examples: list[bytes]) -> Result:
        """Regress serialized examples: one float per example."""
        signature, out = self._run_examples(servable, signature_name, examples, "regress")
        if "outputs" not in out:
            raise InvalidArgument(f"signature {signature.name!r} has no 'outputs' output for Regress")
        values = np.asarray(out["outputs"]).reshape(len(examples), -1)
        if values.shape[1] != 1:
            raise InvalidArgument(f"Regress expects one value per example, got shape {list(values.shape)}")
        return Result(servable, signature, [float(v) for v in values[:, 0]])

    def classify(self, ref: ModelRef, examples: list[bytes]) -> Result:
        """Classify API."""
        return self.classify_on(self.resolve(ref), ref.signature_name, examples)

    def regress(self, ref: ModelRef, examples: list[bytes]) -> Result:
        """Regress API."""
        return self.regress_on(self.resolve(ref), ref.signature_name, examples)

    def multi_inference(self, tasks: list[tuple[ModelRef, str]], examples: list[bytes]) -> list[Result]:
        """Several Classify/Regress tasks on the same model version and input."""
        if not tasks:
            raise InvalidArgument("MultiInferenceRequest has no tasks")
        names = {ref.name for ref, _ in tasks}
        if len(names) != 1:
            raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        versions = {(ref.version, ref.label) for ref, _ in tasks}
        if len(versions) != 1:
            raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model version.")
        signatures = [ref.signature_name or "serving_default" for ref, _ in tasks]
        if len(set(signatures)) != len(signatures):
            raise InvalidArgument("Duplicate evaluation of signature in MultiInferenceRequest")
        servable = self.resolve(tasks[0][0])
        results = []
        for ref, method in tasks:
            if method == CLASSIFY_METHOD:
                results.append(self.classify_on(servable, ref.signature_name, examples))
            elif method == REGRESS_METHOD:
                results.append(self.regress_on(servable, ref.signature_name, examples))
            else:
                raise InvalidArgument(f"Unsupported signature method_name: {method}")
        return results

    def metadata(self, ref: ModelRef) -> Servable:
        """The servable whose signature_def map answers a metadata request."""
        return self.resolve(ref)

    def status(self, ref: ModelRef) -> list[VersionStatus]:
        """Version states of a model (one version when a version or label is given)."""
        return self.manager.status(ref.name, ref.version, ref.label)


def replay_warmup_record(core: InferenceCore, servable: Servable, log) -> None:
    """Run one PredictionLog record of a warmup file against `servable`."""
    from serving import tensor_codec

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        req = log.predict_log.request
        inputs = {k: tensor_codec.to_numpy(v, k) for k, v in req.inputs.items()}
        core.predict_on(servable, req.model_spec.signature_name, inputs, tuple(req.output_filter))
    elif kind in ("classify_log", "regress_log"):
        req = getattr(log, kind).request
        examples = examples_from_input(req.input)
        (core.classify_on if kind == "classify_log" else core.regress_on)(
            servable, req.model_spec.signature_name, examples)
    elif kind == "multi_inference_log":
        req = log.multi_inference_log.request
        examples = examples_from_input(req.input)
        for task in req.tasks:
            fn = core.classify_on if task.method_name == CLASSIFY_METHOD else core.regress_on
            fn(servable, task.model_spec.signature_name, examples)
    else:
        raise InvalidArgument(f"unsupported warmup record type {kind!r}")


def examples_from_input(inp) -> list[bytes]:
    """Serialized tf.Examples of an `Input` proto; context (if any) is merged into every example."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        context = inp.example_list_with_context.context.SerializeToString()
        # Concatenated serialized messages parse as their merge: the example's features override the context's.
        return [context + e.SerializeToString() for e in inp.example_list_with_context.examples]
    raise InvalidArgument("Input is empty: set example_list or example_list_with_context")
