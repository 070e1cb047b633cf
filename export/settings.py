"""Every exporter's settings, defined once: frozen dataclasses whose fields carry their command-line help.

The argparse options (`add_options`) and the config built from parsed arguments (`from_args`) both come from the
fields, so a setting is written in one place. Nothing here imports TensorFlow or Keras: `python -m export … --help`
and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.recipes import (
    RANDOM_JPEG_MAX_QUALITY,
    RECIPE_OPTIONS,
    RECIPES,
    SHIFT_FRACTION,
    Recipe,
    describe_recipe_defaults,
    format_setting,
)

BACKBONE_NAMES = ("efficientnetb0", "mobilenetv2", "resnet50")  # export.models.transfer_model.BACKBONES' keys
CIFAR_RECIPES = ("reference", "improved")
OPTIMIZERS = ("adam", "sgd")
# How the training shift augmentation resamples (export.models.cifar10_model): Keras's default, or whole pixels
SHIFT_INTERPOLATIONS = ("bilinear", "nearest")
PRECISIONS = ("float32", "mixed_bfloat16")  # Keras dtype policies a training run may use (export.training.precision)
# --precision's choices: a policy, or "auto" (mixed_bfloat16 on a CPU with bf16 units, else float32)
PRECISION_CHOICES = ("auto", *PRECISIONS)
PRECISION_HELP = ("float32: the reference numerics; mixed_bfloat16: layers compute in bfloat16, weights stay float32 "
                  "(faster on CPUs with AMX or AVX512-BF16, slower without: see the training-speed results; changes "
                  "the numerics); auto: mixed_bfloat16 on a CPU with bf16 units, else float32. The exported model is "
                  "float32 either way")
DISTRIBUTE_CHOICES = ("auto", "none", "mirrored", "multi-worker")  # export.training.distribution.resolve's kinds
DISTRIBUTE_HELP = ("tf.distribute strategy: auto (MultiWorkerMirroredStrategy when TF_CONFIG names more than one "
                   "worker, else none), none, mirrored (all local devices), multi-worker. --batch-size is the "
                   "global batch, split across the replicas; only the chief publishes")
CIFAR_IMAGE_SIZE = 32  # export.data.cifar10_data.INPUT_SIZE's side, here without importing numpy


def check_shift_fraction(value: float, name: str = "shift fraction") -> None:
    """Refuse a training-shift fraction the shift cannot take (the command line and `build_model` both ask here)."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} {value}: expected a fraction of the image's side between 0 and 1 ({SHIFT_FRACTION}: "
                         f"up to {SHIFT_FRACTION * CIFAR_IMAGE_SIZE:g} pixels of {CIFAR_IMAGE_SIZE})")


def option(default: Any = dataclasses.MISSING, help: str = "", *, group: str = "training",  # noqa: A002
           flag: str | None = None, by_recipe: bool = False, **argparse_kwargs: Any):
    """A dataclass field that is also a command-line option (`flag` defaults to --field-name; a bool that defaults
    to True becomes --no-field-name). `by_recipe`: the field is None unless given (the recipe's value is used then,
    see `CifarExportConfig.recipe_values`), and `add_options` ends its help with each recipe's value from `RECIPES`,
    so the help cannot drift from the values used."""
    meta = {"help": help, "group": group, "flag": flag, "by_recipe": by_recipe, "argparse": argparse_kwargs}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the validation gate."""

    min_accuracy: float = 0.0
    max_regression: float = 0.01
    force: bool = False
    max_latency_ms: float | None = None
    max_latency_regression: float | None = None


@dataclass(frozen=True, kw_only=True)
class PublishOptions:
    """Where and how a trained model is published (every exporter)."""

    name: str = option("model", "model name in the repository", group="publishing")
    model_base_path: Path = option(Path("models"), "model repository root", group="publishing", type=Path)
    version: str = option("auto", "'auto' (highest existing + 1) or an integer", group="publishing")
    min_accuracy: float = option(0.0, "gate: minimum test accuracy", group="publishing", type=float)
    max_regression: float = option(0.01, "gate: allowed accuracy drop against the previous version",
                                   group="publishing", type=float)
    force: bool = option(False, "publish even if accuracy or latency regressed", group="publishing")
    max_latency_ms: float | None = option(None, "gate: largest p50 ms at batch 1 of a predict signature in TF "
                                          "Serving's session path", group="publishing", type=float)
    max_latency_regression: float | None = option(None, "gate: largest allowed rise of the p50 at batch 1 over the "
                                                  "previous version run side by side, as a fraction (e.g. 0.2)",
                                                  group="publishing", type=float)
    keep: int | None = option(None, "after publishing, keep only the newest N versions", group="publishing", type=int)
    tflite: bool = option(False, "also write model.tflite (predict_pixels, float32) for tensorflow_model_server "
                          "--prefer_tflite_model, gated on its outputs", group="publishing")

    @property
    def policy(self) -> GatePolicy:
        """The gate thresholds."""
        return GatePolicy(self.min_accuracy, self.max_regression, self.force, self.max_latency_ms,
                          self.max_latency_regression)


@dataclass(frozen=True, kw_only=True)
class TrainingOptions(PublishOptions):
    """How a model is trained (cifar10, caltechown)."""

    epochs: int = option(25, "training epochs", type=int)
    batch_size: int = option(64, "batch size", type=int)
    learning_rate: float = option(1e-3, "Adam learning rate", type=float)
    val_split: float = option(0.1, "fraction of training images held out for validation, stratified", type=float)
    limit: int | None = option(None, "use a stratified subset of N training images", type=int)
    seed: int = option(42, "seed for splits, shuffling and initialisation", type=int)
    augment: bool = option(False, "random flip/shift augmentation")
    early_stopping: int | None = option(None, "stop when val_loss has not improved for PATIENCE epochs; stopped "
                                        "or not, keep the weights of the lowest val_loss epoch (needs validation "
                                        "images)", type=int, metavar="PATIENCE")
    logdir: Path | None = option(None, "TensorBoard log directory", type=Path)
    log_every_steps: int = option(100, "when output is not a terminal, log step, images/s, loss, accuracy and ETA "
                                  "every N training steps (0: epoch lines only)", type=int)
    resume: bool = option(False, "continue an interrupted run from its last epoch checkpoint")
    strict: bool = option(False, "fail on the first corrupt image instead of skipping it")
    cache_dir: Path = option(Path(".cache"), "where extracted data sets and training checkpoints live", type=Path)
    precision: str = option("float32", PRECISION_HELP, choices=PRECISION_CHOICES)
    distribute: str = option("auto", DISTRIBUTE_HELP, group="distributed training", choices=DISTRIBUTE_CHOICES)
    worker_timeout: float = option(300.0, "seconds to wait for every worker of TF_CONFIG to join before giving up "
                                   "with an error (the process is killed: exit status 137)",
                                   group="distributed training", type=float)


@dataclass(frozen=True, kw_only=True)
class CifarExportConfig(TrainingOptions):
    """Everything `python -m export cifar10` was asked to do."""

    data: str = option(help="a directory or archive with CIFAR-10 (python pickles, train/ test/ image folders, or "
                            "the shared cifar10-*-jpg.tar.gz), 'keras' to download, or 'synthetic' (tests only)",
                       group="data")
    name: str = option("cifar10", "model name in the repository", group="publishing")
    recipe: str = option("reference", "reference: the reference numerics (constant Adam rate, no augmentation); "
                         "improved: the same CNN with random flip and whole-pixel shift augmentation, half the "
                         "training images JPEG re-encoded at a random quality each epoch, the rate "
                         f"warmed up to {format_setting(RECIPES['improved'].learning_rate)} over the "
                         "first epoch, then cosine-decayed to 0, no dropout (the layers "
                         "stay at rate 0), 6 test-time views (flip, shifts)", choices=CIFAR_RECIPES)
    learning_rate: float | None = option(None, "learning rate (the improved recipe's peak rate)", type=float,
                                         by_recipe=True)
    conv_dropout: float | None = option(None, "dropout rate after each conv block", group="model", type=float,
                                        by_recipe=True)
    dense_dropout: float | None = option(None, "dropout rate before and after the dense layers", group="model",
                                         type=float, by_recipe=True)
    optimizer: str | None = option(None, "adam, or sgd: SGD with Nesterov momentum 0.9 (give it its own "
                                   "--learning-rate, e.g. 0.05)", choices=OPTIMIZERS, by_recipe=True)
    weight_decay: float | None = option(None, "decoupled weight decay (AdamW: each step shrinks kernels by rate × "
                                        "decay; biases and batch-norm scales/offsets are left alone); 0: plain "
                                        "Adam", type=float, by_recipe=True)
    label_smoothing: float | None = option(None, "cross-entropy against targets of 1 - S for the true class and "
                                           "S / classes spread over all classes (Keras's label_smoothing)",
                                           type=float, metavar="S", by_recipe=True)
    random_erasing: float | None = option(None, "fraction of training images in which Keras's RandomErasing "
                                          "replaces a random rectangle with noise (training only)", group="model",
                                          type=float, metavar="FRACTION", by_recipe=True)
    random_jpeg: float | None = option(None, "fraction of training images re-encoded as JPEG at a random quality "
                                       "from --random-jpeg-min-quality to "
                                       f"{RANDOM_JPEG_MAX_QUALITY} each epoch, so that the model does not learn one "
                                       "encoder's artifacts (training only)",
                                       group="model", type=float, metavar="FRACTION", by_recipe=True)
    random_jpeg_min_quality: int | None = option(None, "the lowest JPEG quality of --random-jpeg's re-encoding "
                                                 f"(1 to {RANDOM_JPEG_MAX_QUALITY})", group="model", type=int,
                                                 metavar="QUALITY", by_recipe=True)
    shift_fraction: float | None = option(None, "the random training shift's largest move each way, a fraction "
                                          "of the image's side (0.1: 3.2 pixels of 32; 0.125: 4, the classic "
                                          "pad-and-crop range)", group="model", type=float, metavar="FRACTION",
                                          by_recipe=True)
    shift_interpolation: str | None = option(None, "how the random training shift (--shift-fraction) "
                                             "resamples: bilinear moves by fractions of a pixel and blurs the "
                                             "image, nearest by whole pixels (the reference recipe shifts only "
                                             "with --augment)", group="model", choices=SHIFT_INTERPOLATIONS,
                                             by_recipe=True)
    test_time_flip: bool | None = option(None, "serve the mean of the probabilities for the image and its mirror "
                                         "image (in the exported graph; twice the compute per image)", group="model",
                                         action=argparse.BooleanOptionalAction, by_recipe=True)
    test_time_shift: int | None = option(None, "also serve the mean over copies of the image shifted PIXELS left "
                                         "and right (reflected border), each mirrored too with the flip: 6 "
                                         "forward passes per image instead of 2; 0: none", group="model", type=int,
                                         metavar="PIXELS", by_recipe=True)
    test_time_vertical: bool | None = option(None, "shift the served views PIXELS up and down as well: 10 "
                                             "forward passes per image with the flip instead of 6",
                                             group="model", action=argparse.BooleanOptionalAction, by_recipe=True)
    precision: str | None = option(None, PRECISION_HELP, choices=PRECISION_CHOICES, by_recipe=True)
    test_each_epoch: bool = option(False, "evaluate the test images after every epoch, as the reference project's "
                                   "fit with the test set as validation data did: test_accuracy and test_loss per "
                                   "epoch in the log, history and learning curve (a few seconds an epoch); never "
                                   "used to stop early or to choose weights")

    def __post_init__(self) -> None:
        shift = self.test_time_shift
        if shift is not None and not 0 <= 2 * shift < CIFAR_IMAGE_SIZE:
            raise ValueError(f"--test-time-shift {shift}: expected a number of pixels from 0 to "
                             f"{(CIFAR_IMAGE_SIZE - 1) // 2} (below half the {CIFAR_IMAGE_SIZE}-pixel images)")
        if self.shift_fraction is not None:
            check_shift_fraction(self.shift_fraction, "--shift-fraction")
        if self.random_jpeg is not None and not 0 <= self.random_jpeg <= 1:
            raise ValueError(f"--random-jpeg {self.random_jpeg}: expected a fraction of images from 0 to 1")
        quality = self.random_jpeg_min_quality
        if quality is not None and not 1 <= quality <= RANDOM_JPEG_MAX_QUALITY:
            raise ValueError(f"--random-jpeg-min-quality {quality}: expected a JPEG quality from 1 to "
                             f"{RANDOM_JPEG_MAX_QUALITY}")
        if self.recipe_values.test_time_vertical and not self.recipe_values.test_time_shift:
            raise ValueError("--test-time-vertical shifts the views --test-time-shift pixels up and down, but that "
                             "shift is 0 here: give --test-time-shift 1 or more (the improved recipe's is "
                             f"{RECIPES['improved'].test_time_shift})")

    @functools.cached_property
    def recipe_values(self) -> Recipe:
        """The recipe this run uses: the named recipe with every option given on the command line applied (once,
        here), `--augment` included; exporters and the metadata read only these concrete values."""
        given = {k: getattr(self, k) for k in RECIPE_OPTIONS if getattr(self, k) is not None}
        base = RECIPES[self.recipe]
        return dataclasses.replace(base, **given, augment=base.augment or self.augment)


@dataclass(frozen=True, kw_only=True)
class Cifar100ExportConfig(CifarExportConfig):
    """Everything `python -m export cifar100` was asked to do: the same CNN, recipes, contract and gate."""

    data: str = option(help="a cifar-100-python/ directory (train, test, meta pickles), its parent, the "
                            "cifar-100-python.tar.gz archive, or 'keras' to download", group="data")
    label_mode: str = option("fine", "fine: the 100 classes; coarse: the 20 superclasses (names from meta)",
                             group="data", choices=("fine", "coarse"))
    name: str = option("cifar100", "model name in the repository", group="publishing")


@dataclass(frozen=True, kw_only=True)
class CaltechownConfig(TrainingOptions):
    """Everything `python -m export caltechown` was asked to do."""

    data: Path = option(help="a directory of class folders (Caltech101 layout) or a .tar.gz of one", group="data",
                        type=Path)
    own: tuple[Path, ...] = option((), "a folder of one's own class (its name is the class) or a folder of class "
                                   "folders; repeatable", group="data", type=Path, action="append")
    backbone: str = option("mobilenetv2", "Keras Applications backbone (mobilenetv2: fast on CPU)", group="model",
                           choices=BACKBONE_NAMES)
    backbone_from: Path | None = option(None, "use the convolutional base of a model this project exported: a "
                                        "version (models/cifar10/3), a model directory (models/cifar10: its "
                                        "newest version) or a .keras file, instead of a Keras Applications "
                                        "backbone", group="model", type=Path)
    weights: str = option("imagenet", "backbone weights: imagenet (downloads, needs network), a local weights "
                          "file, or none", group="model")
    input_size: int = option(160, "square input size in pixels", group="model", type=int)
    fine_tune_epochs: int = option(0, "phase 2 epochs with the top layers unfrozen", group="model", type=int)
    fine_tune_layers: int = option(30, "backbone layers unfrozen in phase 2", group="model", type=int)
    fine_tune_learning_rate: float = option(1e-5, "phase 2 learning rate", group="model", type=float)
    lr_schedule: str = option("cosine", "learning rate over each phase: cosine decay to 0 (steadier validation "
                              "accuracy at the end than a constant rate) or constant", group="model",
                              choices=("cosine", "constant"))
    test_time_flip: bool = option(False, "serve the mean of the probabilities for the image and its mirror image "
                                  "(in the exported graph; twice the compute per image)", group="model")
    test_split: float = option(0.2, "stratified test fraction", type=float)
    augment: bool = option(True, "flip/rotation/zoom/contrast augmentation")
    class_weights: bool = option(True, "balanced class weights")
    epochs: int = option(5, "training epochs", type=int)
    batch_size: int = option(32, "batch size", type=int)
    name: str = option("caltechown", "model name in the repository", group="publishing")


@dataclass(frozen=True, kw_only=True)
class ImagenetExportConfig(PublishOptions):
    """Everything `python -m export imagenet` was asked to do."""

    backbone: str = option("resnet50", "Keras Applications classifier", group="model", choices=BACKBONE_NAMES)
    weights: str = option("imagenet", "imagenet (downloads), a local weights file, or none", group="model")
    images: Path | None = option(None, "a folder of real images for the signature check and warmup (default: "
                                 "generated noise)", group="data", type=Path)
    name: str = option("imagenet", "model name in the repository", group="publishing")


OPTION_GROUPS = ("data", "model", "training", "distributed training", "publishing")  # in --help's order


def add_options(parser: argparse.ArgumentParser, config_class: type, only: tuple[str, ...] = OPTION_GROUPS) -> None:
    """One option per field of `config_class` in the argument groups named in `only`, defaults shown in the help
    (fields of the other groups keep their defaults in `from_args`)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in sorted(dataclasses.fields(config_class), key=lambda f: OPTION_GROUPS.index(f.metadata["group"])):
        meta = f.metadata
        if meta["group"] not in only:
            continue
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        kwargs = dict(meta["argparse"])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        help_text = meta["help"]
        if meta["by_recipe"]:
            help_text = f"{help_text}; default: the recipe's ({describe_recipe_defaults(f.name, RECIPES)})"
        if f.type in ("bool", bool):
            if default:
                flag = "--no-" + f.name.replace("_", "-")
                kwargs.update(action="store_false", help=f"turn off: {help_text}")
            else:
                kwargs.update(action="store_true", help=help_text)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs.update(required=True, help=help_text)
        elif kwargs.get("action") == "append":
            kwargs.update(default=[], help=help_text)
        else:
            shown = "none" if default is None else default
            suffix = "" if "default:" in help_text.lower() else f" (default {shown})"
            kwargs.update(default=default, help=help_text + suffix)
        group.add_argument(flag, dest=f.name, **kwargs)


def from_args(config_class: type, args: argparse.Namespace):
    """The frozen config from parsed arguments (repeatable options become tuples)."""
    values = {}
    for f in dataclasses.fields(config_class):
        if not hasattr(args, f.name):  # a group the parser left out: the field's default
            continue
        value = getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return config_class(**values)
