"""`python -m serving.check SAVED_MODEL_DIR`: will this SavedModel serve in tensorflow_model_server?

Loads the directory with the server's own loader (the graph-mode SessionBundle path that TF Serving takes), runs
every signature on an empty batch (which catches variables the graph reads but the loader did not restore), replays
`assets.extra/tf_serving_warmup_requests` under TF Serving's rules, prints the signatures with their inputs and
outputs and the timings, and exits non-zero on any failure, with TF Serving's error code and message. Run it before
`docker build`. The exporter runs it in a fresh process as its infra-validation gate, with `--compare`: a TFRecord
of PredictionLogs holding requests and the responses the in-memory model gave; each request is replayed and its
outputs compared (floats by max |Δ| ≤ `--tolerance`, everything else exactly).

Exit codes: 0 the model loads, warms up and (with --compare) agrees; 1 it does not; 2 bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class CheckConfig:
    """What `python -m serving.check` was asked to do."""

    path: Path
    model_name: str
    tags: tuple[str, ...] = ("serve",)
    warmup: bool = True
    compare: Path | None = None
    tolerance: float = DEFAULT_TOLERANCE
    as_json: bool = False
    prefer_tflite: bool = False
    cost: bool = False
    cost_baseline: Path | None = None


def build_parser() -> argparse.ArgumentParser:
    """The command line (no TensorFlow import: --help stays fast)."""
    p = argparse.ArgumentParser(
        prog="python -m serving.check",
        description="Load a SavedModel version the way tensorflow_model_server does (graph-mode session over the "
                    "MetaGraph with the given tags), replay its warmup file, and summarise its signatures. "
                    "Exit 0 if it would serve, 1 if not, 2 for a bad command line.",
    )
    p.add_argument("path", type=Path, help="a SavedModel directory, e.g. models/cifar10/3")
    p.add_argument("--model_name", default="",
                   help="model name the warmup requests are run as (default: the parent directory's name)")
    p.add_argument("--saved_model_tags", default="serve", help="comma-separated MetaGraph tags (default serve)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the warmup replay (tensorflow_model_server --enable_model_warmup=false)")
    p.add_argument("--compare", type=Path, default=None,
                   help="TFRecord of PredictionLogs with requests and expected responses to replay and compare")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"max |Δ| allowed for float outputs with --compare (default {DEFAULT_TOLERANCE:g})")
    p.add_argument("--prefer_tflite_model", dest="prefer_tflite", action="store_true",
                   help="check the directory's model.tflite through TF Lite's interpreter, as tensorflow_model_server "
                        "--prefer_tflite_model serves it (default: the SavedModel)")
    p.add_argument("--cost", action="store_true",
                   help="measure each predict signature in the session after warmup: p50/p99 ms at batch 1, "
                        "images/s at batch 32, on the --compare (else warmup) requests")
    p.add_argument("--cost-baseline", type=Path, default=None, metavar="DIR",
                   help="with --cost, measure this other version too, alternating with the checked one, so that "
                        "the two are compared in one process (e.g. the previous version)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object instead of text")
    return p


def parse_args(argv: list[str] | None) -> CheckConfig:
    """Flags into a frozen config; exits 2 on a bad command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.path.is_dir():
        parser.error(f"{args.path} is not a directory")
    if args.compare is not None and not args.compare.is_file():
        parser.error(f"--compare {args.compare}: no such file")
    if args.cost_baseline is not None and not (args.cost and args.cost_baseline.is_dir()):
        parser.error(f"--cost-baseline {args.cost_baseline}: needs --cost and an existing directory")
    name = args.model_name or args.path.resolve().parent.name
    return CheckConfig(path=args.path, model_name=name, tags=tuple(args.saved_model_tags.split(",")),
                       warmup=args.warmup, compare=args.compare, tolerance=args.tolerance, as_json=args.as_json,
                       prefer_tflite=args.prefer_tflite, cost=args.cost, cost_baseline=args.cost_baseline)


def _max_abs_diff(got, want) -> float:
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if got.dtype.kind in "fc" and want.dtype.kind in "fc":
        return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
    return 0.0 if np.array_equal(got, want) else float("inf")


def compare_responses(core, servable, logs: list) -> dict[str, dict]:
    """Replay every request of `logs` (PredictionLogs with expected responses) and measure how far each signature's
    outputs are from the recorded ones."""
    from serving.codecs import tensor_codec
    from serving.core.inference import ModelRef, examples_from_input

    results: dict[str, dict] = {}
    for log in logs:
        kind = log.WhichOneof("log_type")
        started = time.perf_counter()
        if kind == "predict_log":
            req, want = log.predict_log.request, log.predict_log.response
            inputs = {k: tensor_codec.to_numpy(v, k) for k, v in req.inputs.items()}
            got = asyncio.run(core.predict(ModelRef(servable.name, signature_name=req.model_spec.signature_name),
                                           inputs, tuple(want.outputs), servable=servable)).value
            diff = max(_max_abs_diff(got[k], tensor_codec.to_numpy(v, k)) for k, v in want.outputs.items())
            key = req.model_spec.signature_name or "serving_default"
        elif kind == "classify_log":
            req, want = log.classify_log.request, log.classify_log.response
            got = asyncio.run(core.classify(ModelRef(servable.name, signature_name=req.model_spec.signature_name),
                                            examples_from_input(req.input), servable=servable)).value
            got_scores = [[score for _, score in row] for row in got]
            want_scores = [[c.score for c in row.classes] for row in want.result.classifications]
            diff = _max_abs_diff(got_scores, want_scores)
            key = req.model_spec.signature_name or "serving_default"
        else:
            raise ValueError(f"--compare supports predict_log and classify_log records, not {kind}")
        entry = results.setdefault(key, {"requests": 0, "max_abs_diff": 0.0, "seconds": 0.0})
        entry["requests"] += 1
        entry["max_abs_diff"] = max(entry["max_abs_diff"], diff)
        entry["seconds"] = round(entry["seconds"] + time.perf_counter() - started, 4)
    return results


def probe_signatures(servable) -> dict[str, dict]:
    """Run every signature once on an empty batch (zero rows where the batch dimension is unknown).

    Cheap for any model, and enough to execute the graph's reads of variables, tables and assets: a SavedModel whose
    signatures capture state the loader did not restore fails here with FAILED_PRECONDITION ("Could not find
    variable …"), as every request would in tensorflow_model_server. Other errors are reported, not fatal: a model
    may legitimately refuse an empty batch.
    """
    import numpy as np

    from serving.errors import ServingError

    results = {}
    for key, sig in sorted(servable.signatures.items()):
        inputs = {}
        for alias, spec in sig.inputs.items():
            shape = [1] if spec.shape is None else [0 if (i == 0 and d < 0) else max(d, 1)
                                                    for i, d in enumerate(spec.shape)]
            fill = b"" if spec.np_dtype.kind == "O" else 0
            inputs[alias] = np.full(shape, fill, dtype=spec.np_dtype)
        started = time.perf_counter()
        try:
            servable.execute(sig, inputs)
            results[key] = {"ok": True, "seconds": round(time.perf_counter() - started, 4)}
        except ServingError as e:
            results[key] = {"ok": False, "code": e.code, "message": e.message.splitlines()[0][:300],
                            "fatal": e.code == "FAILED_PRECONDITION"}
    return results


def _read_logs(path: Path) -> list:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(raw)
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]


def measure_cost(cfg: CheckConfig, servable, compared: list | None = None) -> dict:
    """The `serving_cost` section, on the compared requests (else the warmup file's): figures per predict signature
    (and for the baseline version, measured in alternation with it); a baseline that does not load is reported, not
    fatal."""
    from serving.cost import measure, predict_inputs, thread_settings
    from serving.errors import ServingError
    from serving.lifecycle.servable import WARMUP_FILE, Servable

    source = cfg.compare if compared is not None else cfg.path / WARMUP_FILE
    logs = compared if compared is not None else (_read_logs(source) if source.is_file() else [])
    inputs = predict_inputs(logs)
    section: dict = {"threads": thread_settings(), "requests_from": str(source)}
    servables = [servable]
    if cfg.cost_baseline is not None:
        try:
            servables.append(Servable(cfg.model_name, 0, cfg.cost_baseline, cfg.tags, prefer_tflite=cfg.prefer_tflite))
        except ServingError as e:
            section["baseline"] = {"path": str(cfg.cost_baseline), "error": f"{e.code}: {e.message}"}
    figures = measure(servables, inputs)
    section["signatures"] = figures[0]
    if len(figures) > 1:
        section["baseline"] = {"path": str(cfg.cost_baseline), "signatures": figures[1]}
    return section


def _tensor_summary(spec) -> dict:
    from serving.codecs import tensor_codec

    shape = None if spec.shape is None else [d if d >= 0 else None for d in spec.shape]
    return {"dtype": tensor_codec.dtype_name(spec.dtype), "shape": shape, "tensor": spec.tensor_name}


def run_check(cfg: CheckConfig) -> dict:
    """Load, warm up, summarise and compare; the report's `ok` says whether the model would serve."""
    from serving.core.inference import InferenceCore, replay_warmup_record
    from serving.errors import ServingError, as_serving_error
    from serving.lifecycle.servable import Servable

    report: dict = {"path": str(cfg.path), "model_name": cfg.model_name, "tags": list(cfg.tags), "ok": False}
    stage = "load"
    try:
        started = time.perf_counter()
        servable = Servable(cfg.model_name, 0, cfg.path, cfg.tags, prefer_tflite=cfg.prefer_tflite)
        report["load_seconds"] = round(time.perf_counter() - started, 3)
        report["signatures"] = {
            key: {"method_name": sig.method_name,
                  "inputs": {a: _tensor_summary(s) for a, s in sig.inputs.items()},
                  "outputs": {a: _tensor_summary(s) for a, s in sig.outputs.items()}}
            for key, sig in sorted(servable.signatures.items())
        }
        stage = "probe"
        report["probe"] = probe_signatures(servable)
        fatal = {k: p for k, p in report["probe"].items() if p.get("fatal")}
        if fatal:
            key, p = next(iter(fatal.items()))
            report["error"] = {"stage": stage, "code": p["code"],
                               "message": f"signature {key!r} cannot run: {p['message']}"}
            return report
        core = InferenceCore(manager=None)
        if cfg.warmup:
            stage = "warmup"
            started = time.perf_counter()
            records = servable.warmup(lambda s, log: replay_warmup_record(core, s, log))
            report["warmup"] = {"records": records, "seconds": round(time.perf_counter() - started, 3)}
        expected = _read_logs(cfg.compare) if cfg.compare is not None else None
        if expected is not None:
            stage = "compare"
            comparison = compare_responses(core, servable, expected)
            report["comparison"] = comparison
            too_far = {k: v["max_abs_diff"] for k, v in comparison.items() if not v["max_abs_diff"] <= cfg.tolerance}
            if too_far:
                report["error"] = {"stage": stage, "code": "OUT_OF_RANGE",
                                   "message": f"outputs differ from the expected responses by more than "
                                              f"{cfg.tolerance:g}: {too_far}"}
                return report
        if cfg.cost:
            stage = "cost"
            report["serving_cost"] = measure_cost(cfg, servable, expected)
        report["ok"] = True
    except (ServingError, ValueError, OSError) as e:
        err = e if isinstance(e, ServingError) else as_serving_error(e)
        report["error"] = {"stage": stage, "code": err.code, "message": err.message}
    return report


def format_text(report: dict) -> str:
    """A human-readable summary of a report."""
    lines = [f"SavedModel {report['path']} (tags {','.join(report['tags'])}, as model {report['model_name']!r})"]
    if "load_seconds" in report:
        lines.append(f"  loaded in {report['load_seconds']:.2f}s (graph-mode session, as tensorflow_model_server)")
    for key, sig in report.get("signatures", {}).items():
        lines.append(f"  signature {key!r} ({sig['method_name']})")
        for direction in ("inputs", "outputs"):
            for alias, t in sig[direction].items():
                lines.append(f"    {direction[:-1]:6} {alias}: {t['dtype']} {t['shape']}")
    for key, p in report.get("probe", {}).items():
        state = f"ran in {p['seconds'] * 1e3:.1f} ms" if p["ok"] else f"{p['code']}: {p['message']}"
        lines.append(f"  empty-batch run of {key!r}: {state}")
    if "warmup" in report:
        w = report["warmup"]
        lines.append(f"  warmup: {w['records']} records replayed in {w['seconds']:.2f}s")
    for key, c in report.get("comparison", {}).items():
        lines.append(f"  compare {key!r}: {c['requests']} requests, max |Δ| {c['max_abs_diff']:.3g}")
    for key, c in report.get("serving_cost", {}).get("signatures", {}).items():
        lines.append(f"  cost {key!r}: batch 1 p50 {c['batch1_p50_ms']} ms, p99 {c['batch1_p99_ms']} ms; batch 32 "
                     f"{c['batch32_images_per_s']} images/s")
    if report["ok"]:
        lines.append("OK: this version would load and serve in tensorflow_model_server")
    else:
        e = report["error"]
        lines.append(f"FAILED at {e['stage']}: {e['code']}: {e['message']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg = parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    report = run_check(cfg)
    print(json.dumps(report) if cfg.as_json else format_text(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
