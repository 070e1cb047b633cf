"""`python -m clients.bench.soak_swaps`: hot swaps under traffic, RSS per swap."""

import pytest

from clients.bench.soak_swaps import main, parse_args
from tests.serving.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_two_swaps_serve_every_request_and_report_rss(exported_cifar10, real_jpegs, capsys):
    code = main([str(exported_cifar10), "--image", str(real_jpegs[0]), "--swaps", "2", "--settle", "0.5",
                 "--port", str(free_port()), "--grpc-port", str(free_port())])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "swap 2/2: version 3 served" in out and "growth per swap (from swap 1):" in out
    assert "failed 0" in out


def test_bad_arguments_exit_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        parse_args([str(tmp_path), "--image", "x.jpg"])
    assert e.value.code == 2
