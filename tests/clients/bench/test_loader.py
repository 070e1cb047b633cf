"""`python -m clients.bench.loader`: TF2 loader vs the server's session loader, measured in one process."""

import pytest

from clients.bench.loader import main, parse_args

pytestmark = pytest.mark.slow


def test_measures_both_paths_at_batch_1_and_32_for_both_predict_signatures(exported_cifar10, real_jpegs, capsys):
    assert main([str(exported_cifar10), "--image", str(real_jpegs[0]), "--rounds", "1", "--seconds", "0.1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["signature", "batch", "TF2", "ms", "session", "ms", "session/TF2"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1]) for r in rows] == [("serving_default", "1"), ("serving_default", "32"),
                                            ("predict_pixels", "1"), ("predict_pixels", "32")]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 and float(r[4]) > 0 for r in rows)


def test_bad_arguments_exit_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        parse_args([str(tmp_path), "--image", "x.jpg", "--rounds", "0"])
    assert e.value.code == 2
