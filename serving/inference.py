"""Transport-free request handling: Predict, Classify, Regress, MultiInference, metadata and status.

The REST and gRPC layers turn their wire formats into these calls (numpy arrays, serialized tf.Examples) and back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import numpy as np

from serving import example_signatures
from serving.errors import Internal, InvalidArgument, Unimplemented
from serving.example_signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD
from serving.model_manager import ModelManager, VersionStatus
from serving.servable import DEFAULT_SIGNATURE, Servable, Signature


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

    def __init__(self, manager: ModelManager, runner: Runner = direct_runner, on_runtime=None,
                 method_name_check: bool = False):
        self.manager = manager
        self.method_name_check = method_name_check  # --enable_signature_method_name_check
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
        signature = self.predict_signature(servable, ref.signature_name)
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

    def predict_signature(self, servable: Servable, signature_name: str) -> Signature:
        """The Predict signature (FAILED_PRECONDITION if absent); with the method-name check, only predict,
        classify and regress signatures qualify (VerifySignature, which answers INTERNAL)."""
        signature = servable.signature(signature_name)
        if self.method_name_check and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise Internal(f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                           f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
        return signature

    def predict_on(self, servable: Servable, signature_name: str, inputs, output_filter=(), deadline=None) -> Result:
        """Predict on an already resolved servable (used by warmup too)."""
        signature = self.predict_signature(servable, signature_name)
        outputs = self._run(servable, signature, inputs, tuple(output_filter), deadline, "predict")
        return Result(servable, signature, outputs)

    def _examples_api(self, servable: Servable, signature_name: str, examples: list[bytes], method: str,
                      api: str) -> Result:
        """RunClassify / RunRegress: the signature's structure checked, the examples fed to its `inputs` tensor
        (batched like Predict when batching is on), the outputs checked and turned into per-example results."""
        check, results = example_signatures.RULES[method]
        signature = example_signatures.lookup(servable, signature_name, "No signature was found with the name: ")
        wanted = check(servable, signature, self.method_name_check)
        batch = example_signatures.examples_tensor(examples)
        out = self._run(servable, signature, {next(iter(signature.inputs)): batch}, tuple(wanted), None, api)
        return Result(servable, signature, results(out, len(examples)))

    def classify_on(self, servable: Servable, signature_name: str, examples: list[bytes]) -> Result:
        """Classify serialized examples: per example a list of (label, score)."""
        return self._examples_api(servable, signature_name, examples, CLASSIFY_METHOD, "classify")

    def regress_on(self, servable: Servable, signature_name: str, examples: list[bytes]) -> Result:
        """Regress serialized examples: one float per example."""
        return self._examples_api(servable, signature_name, examples, REGRESS_METHOD, "regress")

    def classify(self, ref: ModelRef, examples: list[bytes]) -> Result:
        """Classify API."""
        return self.classify_on(self.resolve(ref), ref.signature_name, examples)

    def regress(self, ref: ModelRef, examples: list[bytes]) -> Result:
        """Regress API."""
        return self.regress_on(self.resolve(ref), ref.signature_name, examples)

    def multi_inference(self, tasks: list[tuple[ModelRef, str]], examples: list[bytes]) -> list[Result]:
        """Several Classify/Regress tasks over one input in one Session run (TensorFlowMultiInferenceRunner);
        the servable is the first task's, as GetModelSpecFromRequest picks it."""
        if not tasks:
            raise InvalidArgument("MultiInferenceRequest must contain at least one task")
        return self.multi_inference_on(self.resolve(tasks[0][0]), tasks, examples)

    def multi_inference_on(self, servable: Servable, tasks: list[tuple[ModelRef, str]],
                           examples: list[bytes]) -> list[Result]:
        """MultiInference against an already resolved servable (used by warmup too)."""
        model_name = ""
        seen: set[str] = set()
        planned = []
        for ref, method in tasks:
            if not ref.name:
                raise InvalidArgument("Found ModelSpec with an empty model name.")
            if model_name and ref.name != model_name:
                raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            model_name = ref.name
            key = ref.signature_name or DEFAULT_SIGNATURE
            if key in seen:
                raise InvalidArgument(f"Duplicate evaluation of signature: {key}")
            seen.add(key)
            signature = example_signatures.lookup(servable, key, "Requested signature not found in model graph: ")
            if method not in example_signatures.RULES:
                raise Unimplemented(f"Unsupported signature method_name: {method}")
            check, results = example_signatures.RULES[method]
            planned.append((signature, check(servable, signature, False), results))
        batch = example_signatures.examples_tensor(examples)
        feeds = {sig.inputs[example_signatures.INPUTS].tensor_name: batch for sig, _, _ in planned}
        fetches = tuple(sorted({sig.outputs[a].tensor_name for sig, wanted, _ in planned for a in wanted}))
        started = time.perf_counter()
        values = dict(zip(fetches, servable.run_tensors(feeds, fetches), strict=True))
        if self._on_runtime is not None:
            self._on_runtime(servable.name, "multi_inference", time.perf_counter() - started)
        return [Result(servable, signature, results({a: values[signature.outputs[a].tensor_name] for a in wanted},
                                                    len(examples)))
                for signature, wanted, results in planned]

    def metadata(self, ref: ModelRef) -> Servable:
        """The servable whose signature_def map answers a metadata request."""
        return self.resolve(ref)

    def status(self, ref: ModelRef) -> list[VersionStatus]:
        """Version states of a model (one version when a version or label is given)."""
        return self.manager.status(ref.name, ref.version, ref.label)


def replay_warmup_record(core: InferenceCore, servable: Servable, log) -> None:
    """Run one PredictionLog record of a warmup file against `servable` (RunWarmupRequest's dispatch)."""
    from serving import tensor_codec

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        req = log.predict_log.request
        inputs = {k: tensor_codec.to_numpy(v, k) for k, v in req.inputs.items()}
        core.predict_on(servable, req.model_spec.signature_name, inputs, tuple(req.output_filter))
    elif kind == "classify_log":
        req = log.classify_log.request
        core.classify_on(servable, req.model_spec.signature_name, examples_from_input(req.input))
    elif kind == "regress_log":
        req = log.regress_log.request
        core.regress_on(servable, req.model_spec.signature_name, examples_from_input(req.input))
    elif kind == "multi_inference_log":
        req = log.multi_inference_log.request
        tasks = [(ModelRef(t.model_spec.name, signature_name=t.model_spec.signature_name), t.method_name)
                 for t in req.tasks]
        core.multi_inference_on(servable, tasks, examples_from_input(req.input))
    elif kind is not None:  # session_run_log, predict_streamed_log
        number = log.DESCRIPTOR.fields_by_name[kind].number
        raise Unimplemented(f"Unsupported log_type for warmup: {number}")


def examples_from_input(inp) -> list[bytes]:
    """Serialized tf.Examples of an `Input` proto; context (if any) is merged into every example."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        context = inp.example_list_with_context.context.SerializeToString()
        # Concatenated serialized messages parse as their merge: the example's features override the context's.
        return [context + e.SerializeToString() for e in inp.example_list_with_context.examples]
    raise InvalidArgument("Input is empty.")
