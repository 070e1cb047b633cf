"""notebooks/quickstart.ipynb runs from top to bottom (export → plots → server → both clients → stop), so it
cannot rot; on tiny generated data, offline."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from export.publish import repository

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"

pytestmark = pytest.mark.slow


def test_quickstart_notebook_runs_end_to_end_and_shows_plots_and_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_DATA", "synthetic")
    monkeypatch.setenv("QUICKSTART_EPOCHS", "1")
    monkeypatch.setenv("QUICKSTART_LIMIT", "")
    monkeypatch.setenv("QUICKSTART_WORKDIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
                   ).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 2  # learning curve and confusion matrix, inline
    assert "published cifar10 version 1" in text
    assert text.count("photo_") == 12  # six photos, answered over gRPC and over REST
    assert "gRPC (bytes):" in text and "REST (pixels):" in text
    assert "server exit status 0" in text
    assert repository.list_versions(tmp_path / "models" / "cifar10") == [1]
