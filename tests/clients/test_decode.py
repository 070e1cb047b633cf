import json

import numpy as np

from clients.decode import Label, Prediction, format_table, from_classifications, from_outputs


def test_topk_from_class_names_and_scores_is_not_softmaxed_again():
    outputs = {"scores": np.float32([[0.7, 0.2]]), "class_ids": np.int64([[3, 1]]),
               "class_names": np.array([[b"cat", b"automobile"]], object), "probabilities": np.float32([[0] * 10])}
    (row,) = from_outputs(outputs, top_k=2)
    assert row == [Label("cat", 3, np.float32(0.7).item()), Label("automobile", 1, np.float32(0.2).item())]


def test_topk_from_probabilities_and_label_list():
    probs = np.float32([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    rows = from_outputs({"probabilities": probs}, top_k=2, labels=["a", "b", "c"])
    assert [[(t.label, t.class_id) for t in r] for r in rows] == [[("b", 1), ("c", 2)], [("a", 0), ("c", 2)]]
    assert abs(rows[0][0].score - 0.6) < 1e-6


def test_more_than_k_served_falls_back_to_probabilities():
    outputs = {"scores": np.float32([[0.6]]), "class_ids": np.int64([[1]]), "probabilities": np.float32([[0.4, 0.6]])}
    (row,) = from_outputs(outputs, top_k=2, labels=["x", "y"])
    assert [t.label for t in row] == ["y", "x"]


def test_classifications_table_and_json():
    rows = from_classifications([[("cup", 0.86), ("pot", 0.07)]], top_k=1)
    p = Prediction("cup.jpg", tuple(rows[0]), "imagenet", 3)
    assert "cup.jpg  (imagenet v3)" in format_table([p]) and "86.00 %" in format_table([p])
    assert json.loads(p.to_json())["top"] == [{"label": "cup", "class_id": None, "score": 0.86}]
