"""What is test-time augmentation worth for a trained CIFAR model? Accuracy per set of views, on the same weights.

    python -m export.lab.views_report --model models/cifar10 --data ../shared/datasets
    python -m export.lab.views_report --model models/cifar10/3 --data ../shared/datasets --shifts 1,2,3
    python -m export.lab.views_report --model models/cifar10/3 --data ../shared/datasets --split validation \
        --shifts 2 --offsets "2,2 -2,-2" --offsets "2,0 -2,0"

The classifier inside the published version (`assets.extra/keras_model.keras`, unwrapped from the views it was
exported with) classifies the test images through each set of views that `--test-time-flip` and
`--test-time-shift` can export: the image alone, with its mirror image, and per shift the image and copies shifted
that many pixels left and right (6 forward passes with the flip), or also up and down (10, exported with
`--test-time-vertical`); each `--offsets` adds a set of its own: the image and copies shifted by the given (rows,
columns), all mirrored too. All sets see the same images, so their differences are paired: much less noisy than
comparing two training runs. `--split validation` measures on the images the model's own run held out for
validation (the split is rebuilt from the version's metadata: seed, --val-split, --limit), so the views can be
chosen without looking at the test set. The table gives accuracy, forward passes per image, the change against
the flip and what each set costs: images/s of the Keras classifier in this process (batch `--batch-size`, after
one warm-up batch) and that time relative to the flip's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewsConfig:
    """What `python -m export.lab.views_report` was asked to do."""

    model: Path
    data: str
    shifts: tuple[int, ...]
    cache_dir: Path
    batch_size: int
    split: str = "test"
    offset_sets: tuple[tuple[tuple[int, int], ...], ...] = ()  # --offsets: extra sets of views besides the image


def parse_shifts(text: str) -> tuple[int, ...]:
    """`1,2,3` → (1, 2, 3); ValueError naming the value when one is not an integer from 1 to 15."""
    out = []
    for part in text.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= 15:
            raise ValueError(f"shift {part.strip()!r}: expected a number of pixels from 1 to 15")
        out.append(int(part))
    return tuple(out)


def parse_offsets(text: str) -> tuple[tuple[int, int], ...]:
    """`2,2 -2,-2` → ((2, 2), (-2, -2)): (rows, columns) shifts, each from -15 to 15 and not both 0; ValueError
    naming the value otherwise."""
    out = []
    for part in text.split():
        pieces = part.split(",")
        try:
            dy, dx = (int(piece) for piece in pieces)
        except ValueError:
            raise ValueError(f"offset {part!r}: expected ROWS,COLUMNS, e.g. 2,-2") from None
        if not (-15 <= dy <= 15 and -15 <= dx <= 15) or not (dy or dx):
            raise ValueError(f"offset {part!r}: expected shifts from -15 to 15 pixels, not both 0")
        out.append((dy, dx))
    if not out:
        raise ValueError(f"offsets {text!r}: expected one or more ROWS,COLUMNS pairs")
    return tuple(out)


def validation_images(model_path: Path, splits):
    """The validation images of the run that exported `model_path` (its assets.extra/keras_model.keras): the
    exporter's own split (`limit_then_split`) with the --limit, --val-split and seed its metadata recorded, checked
    against the counts recorded there. DataError naming what is missing or different."""
    from export.data.image_data import DataError, limit_then_split
    from export.publish.gate import METADATA_PATH

    version = model_path.parent.parent
    try:
        metadata = json.loads((version / METADATA_PATH).read_text())
        data, seed = metadata["data"], metadata["training"]["seed"]
        fraction, limit, expected = data["val_split"], data.get("limit"), data["validation_images"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"--split validation: {str(version)!r} has no export metadata with its split ({e}); "
                        "give a published version") from e
    if not expected:
        raise DataError(f"--split validation: {str(version)!r} was trained with --val-split {fraction:g}, so no "
                        "images were held out: use --split test, or export with --val-split 0.1")
    train, held_out = limit_then_split(splits.train, limit, fraction, seed)
    if len(held_out) != expected or len(train) != data["train_images"]:
        raise DataError(f"--split validation: this --data gives {len(train)} training and {len(held_out)} "
                        f"validation images, the model's run had {data['train_images']} and {expected}: pass the "
                        f"data it was trained on ({data.get('source')})")
    return held_out


def run(cfg: ViewsConfig) -> dict:
    """Accuracy of the model's classifier under each set of views, on the test or its validation images."""
    from export.data import cifar10_data
    from export.models.inference_views import view_count, with_test_time_views, with_views_at, without_test_time_views
    from export.models.transfer_model import load_project_model, resolve_project_model
    from export.training.evaluation import metrics_from_predictions, predict_probabilities

    path = resolve_project_model(cfg.model, flag="--model")
    classifier = without_test_time_views(load_project_model(cfg.model, flag="--model"))
    splits = cifar10_data.load(cfg.data, cfg.cache_dir)
    test = splits.test if cfg.split == "test" else validation_images(path, splits)
    logger.info("%s: %d %s images from %s", path, len(test), cfg.split, cfg.data)
    # (label, flip, shift, vertical, offsets): the exporter's sets, then each --offsets set
    sets = [("image alone", False, 0, False, None), ("image + mirror (--test-time-flip)", True, 0, False, None)]
    for shift in cfg.shifts:
        sets += [(f"+ shifts ±{shift} px left/right (--test-time-shift {shift})", True, shift, False, None),
                 (f"+ shifts ±{shift} px left/right/up/down", True, shift, True, None)]
    for offsets in cfg.offset_sets:
        sets.append(("+ offsets " + " ".join(f"({dy},{dx})" for dy, dx in offsets), True, None, False, offsets))
    rows = []
    for label, flip, shift, vertical, offsets in sets:
        if offsets is None:
            model, passes = with_test_time_views(classifier, flip, shift, vertical), view_count(flip, shift, vertical)
        else:
            views = [(0, 0), *offsets]
            model, passes = with_views_at(classifier, views, flip=True), 2 * len(views)
        model(test.images[: cfg.batch_size].astype("float32"), training=False)  # warm-up, not timed
        started = time.perf_counter()
        predicted = predict_probabilities(model, test, cfg.batch_size).argmax(axis=1)
        seconds = time.perf_counter() - started
        accuracy = metrics_from_predictions(test.labels, predicted, test.class_names)["test_accuracy"]
        rows.append({"views": label, "forward_passes": passes, "flip": flip,
                     "shift": shift, "vertical": vertical,
                     **({"offsets": [list(offset) for offset in offsets]} if offsets else {}),
                     "accuracy": accuracy, "seconds": seconds,
                     "images_per_second": round(len(test) / seconds, 1)})
        logger.info("%s: accuracy %.4f, %.0f images/s", label, accuracy, len(test) / seconds)
    for row in rows:
        row["change_points_vs_flip"] = round(100 * (row["accuracy"] - rows[1]["accuracy"]), 2)
        row["time_vs_flip"] = round(row["seconds"] / rows[1]["seconds"], 2)
    return {"model": str(path), "split": cfg.split, f"{cfg.split}_images": len(test), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and a JSON line."""
    p = argparse.ArgumentParser(prog="python -m export.lab.views_report", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a published version (models/cifar10/3), a model "
                   "directory (its newest version) or a .keras file")
    p.add_argument("--data", required=True, help="CIFAR-10 source as for `python -m export cifar10`")
    p.add_argument("--split", choices=("test", "validation"), default="test",
                   help="the test images (default), or the images the model's run held out for validation")
    p.add_argument("--shifts", default="1,2,3", help="shifts in pixels to measure (default 1,2,3)")
    p.add_argument("--offsets", action="append", default=[], metavar="'ROWS,COLUMNS ...'",
                   help="also measure the image plus copies shifted by these offsets, each mirrored too (e.g. "
                   "'2,2 -2,-2': diagonally); repeat for more sets (default: none)")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    p.add_argument("--batch-size", type=int, default=256)
    a = p.parse_args(argv)
    try:
        shifts = parse_shifts(a.shifts)
        offset_sets = tuple(parse_offsets(text) for text in a.offsets)
    except ValueError as e:
        p.error(str(e))
    cfg = ViewsConfig(a.model, a.data, shifts, a.cache_dir, a.batch_size, a.split, offset_sets)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    from export.data.image_data import DataError

    try:
        r = run(cfg)
    except (DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'views':<58}{'passes':>7}{'accuracy':>10}{'vs flip (points)':>18}{'images/s':>10}{'time vs flip':>14}")
    for row in r["rows"]:
        print(f"{row['views']:<58}{row['forward_passes']:>7}{100 * row['accuracy']:>9.2f}%"
              f"{row['change_points_vs_flip']:>18.2f}{row['images_per_second']:>10.0f}{row['time_vs_flip']:>13.2f}×")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
