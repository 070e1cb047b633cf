import pytest

from clients.bench.load import Sample, Window, stable, summarize
from clients.bench.prometheus import parse
from clients.bench.serving_bench import PERF_ANALYZER_COLUMNS, bracket, check_loopback, csv_row


def window(throughput_n: int, latency: float) -> Window:
    return Window(1.0, [Sample(latency, 0.001, latency - 0.002, 0.001) for _ in range(throughput_n)])


def test_stability_needs_three_windows_within_ten_percent():
    assert not stable([window(100, 0.01), window(100, 0.01)])
    assert stable([window(100, 0.010), window(105, 0.0105), window(96, 0.0098)])
    assert not stable([window(100, 0.01), window(100, 0.01), window(130, 0.01)])
    assert not stable([window(100, 0.01), window(100, 0.01), window(100, 0.02)])


def test_summary_percentiles_and_phases():
    w = Window(2.0, [Sample(i / 1000, 0.0001, i / 1000 - 0.0002, 0.0001) for i in range(1, 101)])
    s = summarize([w], batch=1)
    assert s["requests"] == 100 and s["throughput"] == 50
    assert 49_000 < s["p50_us"] < 52_000 and 98_000 < s["p99_us"] <= 100_000
    assert abs(s["client_send_us"] - 100) < 1e-6
    row = csv_row({**s, "concurrency": 4, "queue_us": None, "compute_us": None, "other_us": None})
    assert list(row) == PERF_ANALYZER_COLUMNS


def test_prometheus_histogram_sums_per_model():
    text = """# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_sum{model_name="cifar10",API="predict",entrypoint="GRPC"} 500
:tensorflow:serving:request_latency_count{model_name="cifar10",API="predict",entrypoint="GRPC"} 5
:tensorflow:serving:request_latency_sum{model_name="other",API="predict",entrypoint="GRPC"} 99
:tensorflow:serving:request_latency_bucket{model_name="cifar10",le="10"} 1
"""
    totals = parse(text, "cifar10")
    assert totals == {":tensorflow:serving:request_latency_sum": 500.0,
                      ":tensorflow:serving:request_latency_count": 5.0}


def test_only_loopback_targets():
    check_loopback("127.0.0.1:8500")
    check_loopback("http://localhost:8501")
    with pytest.raises(SystemExit, match="only loopback"):
        check_loopback("http://192.0.2.10:8501")


def test_bracketing_baseline_averages_and_reports_drift():
    before = {"p50_us": 4000.0, "avg_us": 4100.0, "throughput": 240.0, "batch32_throughput": 1000.0}
    after = {"p50_us": 5000.0, "avg_us": 5100.0, "throughput": 200.0, "batch32_throughput": 1100.0}
    b = bracket(before, after)
    assert b["p50_us"] == 4500 and b["batch32_throughput"] == 1050 and b["throughput"] == 220
    assert b["drift"] == pytest.approx(1000 / 4500)  # the larger of the p50 and batch-32 disagreements
    assert bracket(before, before)["drift"] == 0
