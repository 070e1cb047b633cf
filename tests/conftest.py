"""Shared fixtures: the shared data sets, a tiny exported CIFAR-10 model reused by many tests."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def shared_file(name: str) -> Path:
    """A file from ../shared/datasets, or skip the test with the reason."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared dataset {path} not present")
    return path


def assert_accuracy_over(value: float, images: int) -> None:
    """An accuracy measured on `images` images is k/images for a whole number k of right answers (results may be
    rounded to 4 decimals): a wrong denominator, an average of probabilities or a loss reported as accuracy fails."""
    right = value * images
    assert 0.0 <= value <= 1.0 and abs(right - round(right)) <= images * 5e-5 + 1e-9, \
        f"accuracy {value} is not a whole number of right answers out of {images}"


@pytest.fixture(scope="session")
def cifar_test_dir(tmp_path_factory) -> Path:
    """The shared CIFAR-10 test-dev JPEGs extracted once: <dir>/test/<class>/<index>.jpg."""
    archive = shared_file("cifar10-test-dev-jpg.tar.gz")
    target = tmp_path_factory.mktemp("cifar10-test-dev")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def real_jpegs(cifar_test_dir) -> list[Path]:
    """32 real CIFAR-10 test JPEGs, a few of every class."""
    files = []
    for cls in sorted((cifar_test_dir / "test").iterdir()):
        files.extend(sorted(cls.glob("*.jpg"))[:4])
    return files[:32]


@pytest.fixture(scope="session")
def exported_cifar10(tmp_path_factory) -> Path:
    """A CIFAR-10 model trained 1 epoch on synthetic data and published as <repo>/cifar10/1."""
    from export.exporters.cifar import CifarExportConfig, run

    repo = tmp_path_factory.mktemp("models")
    summary = run(CifarExportConfig(data="synthetic", epochs=1, model_base_path=repo,
                                    cache_dir=tmp_path_factory.mktemp("cache")))
    assert summary["published"], summary
    return Path(summary["path"])


@pytest.fixture(autouse=True)
def servers_stay_up():
    """Fail a test during which a server it (or its fixtures) started died: a crash after start-up must not pass
    unnoticed until, or after, the fixture's teardown."""
    yield
    from tests.serving.conftest import check_running_servers

    problems = check_running_servers()
    if problems:
        pytest.fail("\n".join(problems))
