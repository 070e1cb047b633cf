import pytest

from clients.bench.load import Sample, Window, stable, summarize
from clients.bench.prometheus import parse
from clients.bench.report import PERF_ANALYZER_COLUMNS, csv_row
from clients.bench.serving_bench import bracket, check_loopback


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


def test_server_cpu_per_request_is_summed_over_windows_and_absent_when_not_measured():
    a, b = window(100, 0.01), window(300, 0.01)
    assert summarize([a, b], batch=1)["server_cpu_us_per_request"] is None
    a.server_cpu_s, b.server_cpu_s = 0.1, 0.5
    assert summarize([a, b], batch=1)["server_cpu_us_per_request"] == pytest.approx(1500)  # 0.6 s over 400 requests


def test_a_window_reads_the_servers_cpu_around_its_requests():
    from clients.bench.load import LoadRunner, process_cpu_s

    readings = iter([10.0, 10.25])
    runner = LoadRunner(lambda: (lambda: (0.0, 0.0, 0.0)), server_cpu=lambda: next(readings))
    w = runner.concurrency_window([lambda: (0.0, 0.0, 0.0)], 0.05, float("inf"))
    assert w.server_cpu_s == pytest.approx(0.25) and w.samples
    import os

    assert process_cpu_s(os.getpid()) > 0  # this very process, read from /proc


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


def test_request_rate_range_reads_perf_analyzers_syntax():
    from clients.bench.open_loop import parse_rate_range

    assert parse_rate_range("50:200:50") == (50.0, 100.0, 150.0, 200.0)
    assert parse_rate_range("100:300") == (100.0, 200.0, 300.0)
    for bad in ("0:10", "10:5", "a:b", "10"):
        with pytest.raises(ValueError, match="START:END"):
            parse_rate_range(bad)


def test_a_step_is_saturated_when_the_server_falls_behind_the_offered_rate():
    from clients.bench.open_loop import saturated

    assert not saturated({"request_rate": 100.0, "throughput": 97.0, "errors": 0})
    assert saturated({"request_rate": 100.0, "throughput": 80.0, "errors": 0})
    assert saturated({"request_rate": 100.0, "throughput": 99.0, "errors": 3})
    assert not saturated({"request_rate": None, "throughput": 5.0, "errors": 0})  # closed-loop steps never are


def test_the_curve_is_drawn(tmp_path):
    from clients.bench.open_loop import plot_curve

    steps = [{"request_rate": r, "throughput": t, "p50_us": p50, "p99_us": p99}
             for r, t, p50, p99 in ((50, 50, 2100, 3500), (100, 99, 2300, 6000), (200, 150, 90000, 300000))]
    path = plot_curve(steps, tmp_path / "curve.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
