"""Transport-free request handling: one async entry point per API over a `Runner` (direct or batched).

The REST and gRPC layers only translate their wire formats into these calls (numpy arrays, serialized tf.Examples,
or decoders that turn a request into them once the servable is known) and the results back. Every request is
counted and timed here, with TF Serving's labels (`entrypoint` GRPC or REST; latency recorded for successes only).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping
from concurrent import futures
from dataclasses import dataclass

import numpy as np

from serving.core import example_signatures
from serving.core.example_signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD
from serving.core.runners import DirectRunner, OnRuntime, Runner
from serving.errors import Internal, InvalidArgument, Unimplemented
from serving.lifecycle.model_manager import ModelManager, VersionStatus
from serving.lifecycle.servable import DEFAULT_SIGNATURE, Servable, Signature

# Inputs of a Predict: the tensors, or a decoder that builds them for the resolved servable (REST's JSON decoding
# needs the signature's dtypes; gRPC's TensorProto conversion runs after the model lookup, as in TF Serving).
Inputs = Mapping[str, np.ndarray] | Callable[[Servable], Mapping[str, np.ndarray]]
Examples = list[bytes] | Callable[[], list[bytes]]
# What a Predict's inputs declare before they are decoded: their aliases and their common 0th dimension.
Declared = tuple[Collection[str], int]


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


def _api_label(api: str, entrypoint: str) -> str:
    """TF Serving's `API` label: gRPC's method name ("Predict"), REST's verb ("predict")."""
    return api.capitalize() if entrypoint == "GRPC" else api


class InferenceCore:
    """Resolves model references through the manager and runs signatures through a runner.

    `pool` runs blocking work (the direct runner's signature runs, large decodes); the core owns it when it creates
    it. `metrics` (a `serving.core.metrics.ServerMetrics`) counts and times each request.
    """

    def __init__(self, manager: ModelManager | None, runner: Runner | None = None,
                 pool: futures.Executor | None = None, metrics=None, on_runtime: OnRuntime | None = None,
                 method_name_check: bool = False):
        self.manager = manager
        self.method_name_check = method_name_check  # --enable_signature_method_name_check
        self._own_pool = pool is None
        self.pool = pool or futures.ThreadPoolExecutor(8, thread_name_prefix="infer")
        self._on_runtime = on_runtime or (lambda model_name, api, seconds: None)
        self.runner: Runner = runner or DirectRunner(self.pool, self._on_runtime)
        self.metrics = metrics

    def close(self) -> None:
        """Stop the runner and wait for the work on the pool (the pool only if the core created it)."""
        self.runner.stop()
        if self._own_pool:
            self.pool.shutdown(wait=True)

    # ---- plumbing -------------------------------------------------------------------------------------------
    def _request(self, model_name: str, api: str, entrypoint: str | None):
        if self.metrics is None or entrypoint is None:
            return contextlib.nullcontext()
        return self.metrics.request(model_name, _api_label(api, entrypoint), entrypoint)

    async def offload(self, fn: Callable, *args):
        """Run a blocking call on the pool and await it."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    async def _run(self, servable: Servable, signature: Signature, inputs, output_filter, deadline, api: str):
        future = self.runner.submit(servable, signature, dict(inputs), tuple(output_filter), deadline, api)
        return await asyncio.wrap_future(future)

    def resolve(self, ref: ModelRef) -> Servable:
        """The AVAILABLE servable a request refers to."""
        if not ref.name:
            raise InvalidArgument("Missing ModelSpec name")
        return self.manager.servable(ref.name, ref.version, ref.label)

    def predict_signature(self, servable: Servable, signature_name: str) -> Signature:
        """The Predict signature (FAILED_PRECONDITION if absent); with the method-name check, only predict,
        classify and regress signatures qualify (VerifySignature, which answers INTERNAL)."""
        signature = servable.signature(signature_name)
        if self.method_name_check and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise Internal(f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                           f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
        return signature

    def _refuse_oversized(self, servable: Servable, signature_name: str, declared: Declared) -> None:
        """The batch-size refusal, from declared shapes alone: only where the request would get that far (its
        aliases are the signature's inputs), so the errors that come before it there still come first."""
        aliases, rows = declared
        signature = servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is not None and set(aliases) == set(signature.inputs):
            self.runner.check_rows(rows)

    # ---- the APIs: one entry point each ------------------------------------------------------------------
    # `servable`: run on this servable instead of resolving the request's model (a version's warmup replay and
    # `serving.check` run it before the manager serves it); the reference then only names the signature.
    async def predict(self, ref: ModelRef, inputs: Inputs, output_filter: tuple[str, ...] = (),
                      deadline: float | None = None, entrypoint: str | None = None, decode_in_pool: bool = False,
                      servable: Servable | None = None, declared: Declared | None = None) -> Result:
        """Predict API (`deadline`: a time.perf_counter() value, honoured while queued; `declared`: what undecoded
        inputs declare, so that a request too large for a batch is refused before it is decoded)."""
        with self._request(ref.name, "predict", entrypoint):
            servable = servable or self.resolve(ref)
            if declared is not None:
                self._refuse_oversized(servable, ref.signature_name, declared)
            if callable(inputs):
                inputs = await self.offload(inputs, servable) if decode_in_pool else inputs(servable)
            signature = self.predict_signature(servable, ref.signature_name)
            outputs = await self._run(servable, signature, inputs, output_filter, deadline, "predict")
            return Result(servable, signature, outputs)

    async def classify(self, ref: ModelRef, examples: Examples, entrypoint: str | None = None,
                       servable: Servable | None = None) -> Result:
        """Classify API: per example a list of (label, score)."""
        with self._request(ref.name, "classify", entrypoint):
            return await self._run_examples(servable or self.resolve(ref), ref.signature_name, examples,
                                            CLASSIFY_METHOD)

    async def regress(self, ref: ModelRef, examples: Examples, entrypoint: str | None = None,
                      servable: Servable | None = None) -> Result:
        """Regress API: one float per example."""
        with self._request(ref.name, "regress", entrypoint):
            return await self._run_examples(servable or self.resolve(ref), ref.signature_name, examples,
                                            REGRESS_METHOD)

    async def _run_examples(self, servable: Servable, signature_name: str, examples: Examples,
                            method: str) -> Result:
        """RunClassify / RunRegress: the signature's structure checked, the examples fed to its `inputs` tensor
        (batched like Predict when batching is on), the outputs checked and turned into per-example results."""
        check, results = example_signatures.RULES[method]
        signature = example_signatures.lookup(servable, signature_name, "No signature was found with the name: ")
        wanted = check(servable, signature, self.method_name_check)
        examples = examples() if callable(examples) else examples
        batch = example_signatures.examples_tensor(examples)
        api = "classify" if method == CLASSIFY_METHOD else "regress"
        out = await self._run(servable, signature, {next(iter(signature.inputs)): batch}, wanted, None, api)
        return Result(servable, signature, results(out, len(examples)))

    async def multi_inference(self, tasks: list[tuple[ModelRef, str]], examples: Examples,
                              servable: Servable | None = None) -> list[Result]:
        """MultiInference API: several Classify/Regress tasks over one input in one Session run, through the runner
        like every other API (so it is batched when batching is on, as the real server's batching session batches
        any tensor signature). The servable is the first task's, as GetModelSpecFromRequest picks it; the checks
        are TensorFlowMultiInferenceRunner's, in its order (TF Serving records no request metrics for it)."""
        if not tasks:
            raise InvalidArgument("MultiInferenceRequest must contain at least one task")
        servable = servable or self.resolve(tasks[0][0])
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
        examples = examples() if callable(examples) else examples
        batch = example_signatures.examples_tensor(examples)
        combined = _combined_signature([(sig, wanted) for sig, wanted, _ in planned])
        values = await self._run(servable, combined, {alias: batch for alias in combined.inputs}, (), None,
                                 "multi_inference")
        return [Result(servable, signature, results({a: values[signature.outputs[a].tensor_name] for a in wanted},
                                                    len(examples)))
                for signature, wanted, results in planned]

    async def metadata(self, ref: ModelRef) -> Servable:
        """GetModelMetadata API: the servable whose signature_def map answers it."""
        return self.resolve(ref)

    async def status(self, ref: ModelRef) -> list[VersionStatus]:
        """GetModelStatus API: version states of a model (one version when a version or label is given)."""
        if not ref.name:
            raise InvalidArgument("Missing ModelSpec name")
        return self.manager.status(ref.name, ref.version, ref.label)


def _spec_ref(spec) -> ModelRef:
    """A recorded request's ModelSpec as a reference (its signature is what a replay uses)."""
    return ModelRef(spec.name, signature_name=spec.signature_name)


def _combined_signature(parts: list[tuple[Signature, list[str]]]) -> Signature:
    """The signatures of a MultiInference as one runnable signature keyed by graph tensor names: every task's
    `inputs` tensor fed the same examples, every wanted output fetched once."""
    inputs = {sig.inputs[example_signatures.INPUTS].tensor_name: sig.inputs[example_signatures.INPUTS]
              for sig, _ in parts}
    outputs = {sig.outputs[a].tensor_name: sig.outputs[a] for sig, wanted in parts for a in wanted}
    name = "multi_inference:" + "+".join(sig.name for sig, _ in parts)
    return Signature(name, "multi_inference",
                     {t: dataclasses.replace(spec, alias=t) for t, spec in inputs.items()},
                     {t: dataclasses.replace(spec, alias=t) for t, spec in sorted(outputs.items())})


async def _replay(core: InferenceCore, servable: Servable, log) -> None:
    from serving.codecs import tensor_codec

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        req = log.predict_log.request
        inputs = {k: tensor_codec.to_numpy(v, k) for k, v in req.inputs.items()}
        await core.predict(_spec_ref(req.model_spec), inputs, tuple(req.output_filter), servable=servable)
    elif kind == "classify_log":
        req = log.classify_log.request
        await core.classify(_spec_ref(req.model_spec), examples_from_input(req.input), servable=servable)
    elif kind == "regress_log":
        req = log.regress_log.request
        await core.regress(_spec_ref(req.model_spec), examples_from_input(req.input), servable=servable)
    elif kind == "multi_inference_log":
        req = log.multi_inference_log.request
        tasks = [(ModelRef(t.model_spec.name, signature_name=t.model_spec.signature_name), t.method_name)
                 for t in req.tasks]
        await core.multi_inference(tasks, examples_from_input(req.input), servable=servable)
    elif kind is not None:  # session_run_log, predict_streamed_log
        number = log.DESCRIPTOR.fields_by_name[kind].number
        raise Unimplemented(f"Unsupported log_type for warmup: {number}")


def replay_warmup_record(core: InferenceCore, servable: Servable, log) -> None:
    """Run one PredictionLog record of a warmup file against `servable` (RunWarmupRequest's dispatch), from a
    thread without an event loop (the version's load worker), through the core's runner as live requests."""
    asyncio.run(_replay(core, servable, log))


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
