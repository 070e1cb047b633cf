import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2

from clients.bench.transport_floor import FloorConfig, canned_response, main, run
from clients.grpc_transport import _array


def test_canned_reply_is_shaped_like_the_cifar10_model_output():
    resp = predict_pb2.PredictResponse.FromString(canned_response())
    probs = _array(resp.outputs["probabilities"])
    assert probs.shape == (1, 10) and probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.e2e
def test_floor_measures_round_trips_and_cpu_of_both_processes(tmp_path):
    image = tmp_path / "payload.jpg"
    image.write_bytes(b"\xff\xd8" + bytes(1400))  # the bytes path sends them as they are
    results = run(FloorConfig(image, (1, 4), seconds=0.5, warmup_s=0.2, as_json=True))
    assert [r["concurrency"] for r in results] == [1, 4]
    # What the tool reports, not how fast this machine is: speed floors belong to the benchmark's printed figures.
    for r in results:
        assert r["errors"] == 0 and r["throughput"] > 0
        assert 0 < r["p50_us"] <= r["p99_us"]
        assert r["server_cpu_us_per_request"] > 0 and r["client_cpu_us_per_request"] > 0


@pytest.mark.parametrize("args", [["--image", "missing.jpg"], ["--concurrency", "1,x"], ["--concurrency", "0"]])
def test_bad_arguments_exit_with_usage_error(args, tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    argv = args if args[0] == "--image" else ["--image", str(image), *args]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
