"""Fuzz a running model server over both APIs and count the answers a bad request must never get.

    python -m clients.bench.fuzz_apis --rest http://127.0.0.1:8501 --grpc 127.0.0.1:8500 --model half_plus_two \\
        --rest-requests 10000 --grpc-requests 3000 [--pid SERVER_PID] [--seed 0]

Sends seeded random requests: REST with any method, path under /v1, raw bytes or generated JSON bodies (nested
values, b64 objects, huge and deep lists) to :predict/:classify/:regress and the GET APIs; gRPC PredictRequests
with generated TensorProtos (any dtype number, dimensions up to 2^63 - 1, content that fits or does not). A REST
answer of 500 or more, or a gRPC INTERNAL/UNKNOWN, is a failure: the tool prints a table of the answers, the first
failing requests, and with --pid the server's RSS before and after; exit 1 when any failure was seen or the server
stopped answering a good request. Then `--oversized N` sends N each of three small requests that declare large
tensors (a 1 Mi-row float and string input filled from one value, and [20000, 32, 32, 3]) and reports the time per
answer, the server's RSS growth and the answer: what such a request costs before it is refused.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass

from clients.bench.soak_swaps import rss_mib

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
SIGNATURES = ("", "serving_default", "classify_x_to_y", "regress_x_to_y", "two_inputs", "echo_bytes", "nope")
BIG_DIMS = (2**31, 2**40, 2**62, 2**63 - 1, 20000, 1 << 20)


@dataclass(frozen=True)
class FuzzConfig:
    rest: str
    grpc: str
    model: str
    rest_requests: int
    grpc_requests: int
    seed: int
    pid: int | None
    oversized: int


def parse_args(argv: list[str] | None) -> FuzzConfig:
    """Flags into the config (no TensorFlow import)."""
    p = argparse.ArgumentParser(prog="python -m clients.bench.fuzz_apis", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rest", default="http://127.0.0.1:8501", help="the server's REST address")
    p.add_argument("--grpc", default="127.0.0.1:8500", help="the server's gRPC address")
    p.add_argument("--model", default="half_plus_two", help="a served model (its name goes into most requests)")
    p.add_argument("--rest-requests", type=int, default=10000, help="REST requests to send")
    p.add_argument("--grpc-requests", type=int, default=3000, help="gRPC requests to send")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed sends the same requests)")
    p.add_argument("--pid", type=int, default=None, help="the server's process id, to report its RSS")
    p.add_argument("--oversized", type=int, default=200,
                   help="requests per oversized-declaration probe after the fuzzing (0: none)")
    a = p.parse_args(argv)
    return FuzzConfig(a.rest.rstrip("/"), a.grpc, a.model, a.rest_requests, a.grpc_requests, a.seed, a.pid,
                      a.oversized)


def json_value(rng: random.Random, depth: int = 0):
    """A random JSON value: scalars, b64 objects, lists (sometimes ragged or 70+ deep) and objects."""
    roll = rng.random()
    if depth > 6 or roll < 0.35:
        return rng.choice([None, True, False, rng.randint(-(2**63), 2**64 - 1), rng.uniform(-1e30, 1e30),
                           rng.choice(["", "a", "\u00e9", "1.5"]),
                           {"b64": base64.b64encode(rng.randbytes(rng.randint(0, 12))).decode()},
                           {"b64": rng.choice(["%%%", 5, None])}])
    if roll < 0.4:
        nested = 1.0
        for _ in range(rng.choice([65, 100, 500])):
            nested = [nested]
        return nested
    if roll < 0.75:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "b", "x", "inputs", "instances", "b64", "data_bytes"]): json_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def rest_request(rng: random.Random, model: str) -> tuple[str, str, bytes]:
    """(method, path, body) of one generated REST request."""
    base = f"/v1/models/{rng.choice([model, 'nope', ''])}"
    path = rng.choice([base, f"{base}:predict", f"{base}:classify", f"{base}:regress", f"{base}/metadata",
                       f"{base}/versions/{rng.choice(['1', '9', 'x', '-1'])}:predict", f"{base}/labels/stable",
                       "/v1", "/v1/models", f"{base}:explain"])
    if rng.random() < 0.25:
        return rng.choice(METHODS), path, rng.randbytes(rng.randint(0, 64))
    key = rng.choice(["instances", "inputs", "examples", "context", "signature_name"])
    body = {key: json_value(rng)}
    if rng.random() < 0.7:
        body["signature_name"] = rng.choice(SIGNATURES)
    return rng.choice(("POST",) * 4 + METHODS), path, json.dumps(body).encode()


def tensor_proto(rng: random.Random):
    """A generated TensorProto: any dtype number, small or overflowing dimensions, fitting content or not."""
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=rng.choice([*types_pb2.DataType.values(), -1, 999]))
    for _ in range(rng.randint(0, 5)):
        proto.tensor_shape.dim.add().size = rng.choice([0, 1, 2, 3, *BIG_DIMS])
    proto.tensor_shape.unknown_rank = rng.random() < 0.05
    kind = rng.choice(["content", "float", "int", "string", "none"])
    if kind == "content":
        proto.tensor_content = rng.randbytes(rng.randint(0, 48))
    elif kind == "float":
        proto.float_val.extend(rng.uniform(-1e6, 1e6) for _ in range(rng.randint(0, 6)))
    elif kind == "int":
        proto.int_val.extend(rng.randint(-(2**31), 2**31 - 1) for _ in range(rng.randint(0, 6)))
    elif kind == "string":
        proto.string_val.extend(rng.randbytes(rng.randint(0, 8)) for _ in range(rng.randint(0, 6)))
    return proto


OVERSIZED = (("float [1048576, 1], one value", "DT_FLOAT", (1 << 20, 1), "float_val", 1.0),
             ("string [1048576], one value", "DT_STRING", (1 << 20,), "string_val", b"x"),
             ("float [20000, 32, 32, 3], one value", "DT_FLOAT", (20000, 32, 32, 3), "float_val", 1.0))


def oversized_probes(cfg: FuzzConfig, stub) -> list[dict]:
    """Each OVERSIZED request `cfg.oversized` times: bytes sent, ms per answer, RSS growth, the answer."""
    import time

    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    results = []
    for label, dtype, dims, field, value in OVERSIZED:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = cfg.model
        tensor = request.inputs["x"]
        tensor.dtype = types_pb2.DataType.Value(dtype)
        for size in dims:
            tensor.tensor_shape.dim.add().size = size
        getattr(tensor, field).append(value)
        rss_before = rss_mib(cfg.pid) if cfg.pid is not None else None
        started, answer = time.perf_counter(), "OK"
        for _ in range(cfg.oversized):
            try:
                stub.Predict(request, timeout=60)
            except grpc.RpcError as e:
                answer = f"{e.code().name}: {e.details()}"
        results.append({"request": label, "bytes": request.ByteSize(),
                        "ms_per_answer": (time.perf_counter() - started) / cfg.oversized * 1000,
                        "rss_mib_growth": None if rss_before is None else rss_mib(cfg.pid) - rss_before,
                        "answer": answer[:160]})
    return results


def run(cfg: FuzzConfig) -> dict:
    """Send every request; returns the answer counts, the failures and the RSS figures."""
    import grpc
    import requests
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    rng = random.Random(cfg.seed)
    rss_before = rss_mib(cfg.pid) if cfg.pid is not None else None
    rest_codes: Counter[int] = Counter()
    grpc_codes: Counter[str] = Counter()
    failures: list[str] = []
    with requests.Session() as session:
        for _ in range(cfg.rest_requests):
            method, path, body = rest_request(rng, cfg.model)
            try:
                status = session.request(method, cfg.rest + path, data=body, timeout=60).status_code
            except requests.RequestException as e:
                status = 599
                failures.append(f"REST {method} {path}: {type(e).__name__}")
            rest_codes[status] += 1
            if status >= 500 and len(failures) < 20:
                failures.append(f"REST {method} {path} {body[:120]!r} -> {status}")
    with grpc.insecure_channel(cfg.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(cfg.grpc_requests):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = rng.choice([cfg.model, cfg.model, "nope"])
            request.model_spec.signature_name = rng.choice(SIGNATURES)
            request.inputs[rng.choice(["x", "a", "inputs", "data_bytes", "?"])].CopyFrom(tensor_proto(rng))
            try:
                stub.Predict(request, timeout=60)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
                if code in ("INTERNAL", "UNKNOWN") and len(failures) < 20:
                    failures.append(f"gRPC {request.inputs} -> {code}: {e.details()[:160]}")
            grpc_codes[code] += 1
        rss_after = rss_mib(cfg.pid) if cfg.pid is not None else None
        oversized = oversized_probes(cfg, stub) if cfg.oversized > 0 else []
    good = requests.post(f"{cfg.rest}/v1/models/{cfg.model}:predict", json={"instances": [1.0]}, timeout=60)
    return {"rest": dict(sorted(rest_codes.items())), "grpc": dict(sorted(grpc_codes.items())),
            "rest_5xx": sum(n for s, n in rest_codes.items() if s >= 500),
            "grpc_internal_or_unknown": grpc_codes["INTERNAL"] + grpc_codes["UNKNOWN"],
            "still_serving": good.status_code == 200, "rss_mib_before": rss_before,
            "rss_mib_after": rss_after, "oversized": oversized, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, fuzz, print the table and one JSON line; exit 1 on any failure."""
    cfg = parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    result = run(cfg)
    print(f"REST {cfg.rest_requests} requests: {result['rest']}  (5xx: {result['rest_5xx']})")
    print(f"gRPC {cfg.grpc_requests} requests: {result['grpc']}  (INTERNAL/UNKNOWN: "
          f"{result['grpc_internal_or_unknown']})")
    if cfg.pid is not None:
        print(f"server RSS: {result['rss_mib_before']:.1f} MiB before, {result['rss_mib_after']:.1f} MiB after")
    for probe in result["oversized"]:
        growth = "" if probe["rss_mib_growth"] is None else f", RSS {probe['rss_mib_growth']:+.1f} MiB"
        print(f"{cfg.oversized} × {probe['request']} ({probe['bytes']} bytes): {probe['ms_per_answer']:.2f} ms per "
              f"answer{growth}; {probe['answer'][:100]}")
    for line in result["failures"]:
        print("  failure:", line)
    print(json.dumps(result))
    failed = result["rest_5xx"] or result["grpc_internal_or_unknown"] or not result["still_serving"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
