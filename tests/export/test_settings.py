"""Exporter settings: one definition per setting gives the options, their defaults and the frozen config."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from export import settings
from export.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_parsed_defaults_equal_the_dataclass_defaults():
    for model, cls, required in (("cifar10", settings.CifarExportConfig, {"data": "d"}),
                                 ("caltechown", settings.CaltechownConfig, {"data": Path("d")}),
                                 ("imagenet", settings.ImagenetExportConfig, {})):
        argv = [model] + [x for k, v in required.items() for x in (f"--{k}", str(v))]
        assert settings.from_args(cls, build_parser().parse_args(argv)) == cls(**required)


def test_options_reach_the_config_and_the_gate_policy():
    args = build_parser().parse_args(["caltechown", "--data", "c", "--own", "a", "--own", "b", "--no-augment",
                                      "--epochs", "7", "--min-accuracy", "0.5", "--force", "--backbone", "resnet50"])
    cfg = settings.from_args(settings.CaltechownConfig, args)
    assert cfg.own == (Path("a"), Path("b")) and cfg.augment is False and cfg.class_weights is True
    assert cfg.epochs == 7 and cfg.backbone == "resnet50" and cfg.data == Path("c")
    assert cfg.policy == settings.GatePolicy(min_accuracy=0.5, max_regression=0.01, force=True)
    cifar = settings.from_args(settings.CifarExportConfig,
                               build_parser().parse_args(["cifar10", "--data", "x", "--augment", "--val-split", "0"]))
    assert cifar.augment is True and cifar.val_split == 0.0 and cifar.epochs == 25 and cifar.batch_size == 64
    assert cifar.test_each_epoch is False
    assert settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "x", "--test-each-epoch"])).test_each_epoch is True


def test_bad_options_are_refused_by_argparse(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cifar10"])  # --data is required
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["caltechown", "--data", "d", "--backbone", "vgg"])


def test_backbone_choices_match_the_models_the_exporter_builds():
    from export.models.transfer_model import BACKBONES

    assert set(settings.BACKBONE_NAMES) == set(BACKBONES)


def test_help_and_argument_errors_do_not_import_tensorflow():
    code = ("import sys\nfrom export.__main__ import main\n"
            "try:\n    main(['cifar10', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--val-split" in out.stdout and "(default 25)" in out.stdout
    assert out.stdout.strip().endswith("False False")


def test_help_that_states_its_default_gets_no_second_default_appended(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cifar10", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the recipe's (reference float32, improved auto)" in text
    assert "improved auto) (default" not in text
    assert "improved nearest) (default" not in text


def test_every_recipe_setting_is_an_option_whose_help_gives_each_recipes_default_from_the_table(capsys,
                                                                                                 monkeypatch):
    by_recipe = {f.name for f in dataclasses.fields(settings.CifarExportConfig) if f.metadata["by_recipe"]}
    assert by_recipe == set(settings.RECIPE_OPTIONS)
    recipe_fields = {f.name for f in dataclasses.fields(settings.Recipe)}
    assert by_recipe == recipe_fields - {"name", "augment", "lr_schedule"}  # each value an option can override
    assert all(getattr(settings.CifarExportConfig(data="d"), name) is None for name in by_recipe)

    def help_text() -> str:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["cifar10", "--help"])
        return " ".join(capsys.readouterr().out.split())

    text = help_text()
    assert "default: the recipe's (reference 1e-3, improved 2e-3)" in text
    assert "default: the recipe's (reference off, improved on)" in text  # --test-time-flip
    assert "default: the recipe's (adam)" in text  # one value where the recipes agree
    # a default changed in the table is what the help then says: nothing written a second time by hand
    changed = {**settings.RECIPES, "improved": dataclasses.replace(settings.RECIPES["improved"], learning_rate=1.5e-3,
                                                                   conv_dropout=0.1)}
    monkeypatch.setattr(settings, "RECIPES", changed)
    text = help_text()
    assert "default: the recipe's (reference 1e-3, improved 1.5e-3)" in text
    assert "after each conv block; default: the recipe's (reference 0.2, improved 0.1)" in text


def test_improved_recipe_augments_and_warms_up_then_decays_the_rate_to_zero():
    from export.models.cifar10_recipe import learning_rate

    reference = settings.CifarExportConfig(data="d")
    assert reference.recipe == "reference" and not reference.recipe_values.augment
    assert learning_rate(reference, steps_per_epoch=10) == 1e-3
    improved = settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--recipe", "improved", "--epochs", "5"]))
    assert improved.recipe_values.augment and improved.augment is False
    schedule = learning_rate(improved, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    # the improved recipe's peak is 2e-3 (twice the reference's constant rate), reached after the first epoch
    assert rates[0] == 0.0 and rates[1] == pytest.approx(1e-3) and rates[2] == pytest.approx(2e-3)
    assert 0 < rates[3] < 2e-3 and rates[4] == pytest.approx(0.0, abs=1e-9)


def test_recipe_values_are_the_named_recipe_with_the_command_lines_overrides():
    def parse(*extra):
        return settings.from_args(settings.CifarExportConfig, build_parser().parse_args(["cifar10", "--data", "d",
                                                                                        *extra]))

    def values(cfg, *keys):
        return tuple(getattr(cfg.recipe_values, k) for k in keys)

    reference, improved = parse(), parse("--recipe", "improved")
    assert values(reference, "learning_rate", "conv_dropout", "dense_dropout", "test_time_flip") == (
        1e-3, 0.2, 0.2, False)
    # the improved recipe as documented: peak rate 2e-3, no dropout (written out here, not read from the table)
    assert values(improved, "learning_rate", "conv_dropout", "dense_dropout") == (2e-3, 0.0, 0.0)
    given = parse("--recipe", "improved", "--learning-rate", "1e-3", "--conv-dropout", "0.1", "--no-test-time-flip")
    assert values(given, "learning_rate", "conv_dropout", "test_time_flip") == (1e-3, 0.1, False)
    assert values(parse("--test-time-flip"), "test_time_flip") == (True,)
    assert values(reference, "weight_decay") + values(parse("--weight-decay", "0.05"), "weight_decay") == (0.0, 0.05)
    assert values(improved, "random_erasing") + values(parse("--random-erasing", "0.5"), "random_erasing") == (
        0.0, 0.5)
    cases = {
        "label_smoothing": (("--label-smoothing", "0.2"), (0.0, 0.0, 0.2)),
        "test_time_shift": (("--test-time-shift", "0"), (0, 2, 0)),
        "shift_interpolation": (("--shift-interpolation", "bilinear"), ("bilinear", "nearest", "bilinear")),
        "shift_fraction": (("--shift-fraction", "0.125"), (0.1, 0.1, 0.125)),
        "precision": (("--precision", "float32"), ("float32", "auto", "float32")),
        "random_jpeg": (("--random-jpeg", "0"), (0.0, 0.5, 0.0)),
        "random_jpeg_min_quality": (("--random-jpeg-min-quality", "30"), (50, 50, 30)),
    }
    for key, (flag, expected) in cases.items():
        overridden = parse("--recipe", "improved", *flag)
        assert values(reference, key) + values(improved, key) + values(overridden, key) == expected, key


@pytest.mark.parametrize("fraction", ["-0.1", "1.5"])
def test_a_random_jpeg_fraction_outside_zero_to_one_is_exit_2_naming_it(fraction, capsys):
    from export.__main__ import main

    assert main(["cifar10", "--data", "synthetic", "--random-jpeg", fraction]) == 2
    assert f"--random-jpeg {float(fraction)}: expected a fraction of images from 0 to 1" in capsys.readouterr().err


@pytest.mark.parametrize("quality", ["0", "96"])
def test_a_random_jpeg_min_quality_outside_1_to_95_is_exit_2_naming_it(quality, capsys):
    from export.__main__ import main

    assert main(["cifar10", "--data", "synthetic", "--random-jpeg-min-quality", quality]) == 2
    assert f"--random-jpeg-min-quality {quality}: expected a JPEG quality from 1 to 95" in capsys.readouterr().err


@pytest.mark.parametrize("shift", ["-1", "16"])
def test_a_test_time_shift_the_images_cannot_take_is_exit_2_naming_it(shift, capsys):
    from export.__main__ import main

    assert main(["cifar10", "--data", "synthetic", "--test-time-shift", shift]) == 2
    assert f"--test-time-shift {shift}: expected a number of pixels from 0 to 15" in capsys.readouterr().err



@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.1"])
def test_a_shift_fraction_outside_zero_to_one_is_exit_2_naming_it(fraction, capsys):
    from export.__main__ import main

    assert main(["cifar10", "--data", "synthetic", "--recipe", "improved", "--shift-fraction", fraction]) == 2
    assert f"--shift-fraction {float(fraction)}: expected a fraction of the image's side" in capsys.readouterr().err


def test_vertical_views_without_a_shift_are_exit_2_naming_both_flags(capsys):
    from export.__main__ import main

    assert main(["cifar10", "--data", "synthetic", "--test-time-vertical"]) == 2  # the reference recipe: shift 0
    assert "--test-time-vertical shifts the views --test-time-shift pixels" in capsys.readouterr().err
    improved = settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--recipe", "improved", "--test-time-vertical"]))
    assert (improved.recipe_values.test_time_vertical, improved.recipe_values.test_time_shift) == (True, 2)
    default = settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--recipe", "improved"]))
    assert default.recipe_values.test_time_vertical is False
    with_augment = settings.from_args(settings.CifarExportConfig, build_parser().parse_args(
        ["cifar10", "--data", "d", "--augment"]))
    assert with_augment.recipe_values == dataclasses.replace(settings.RECIPES["reference"], augment=True)


def test_the_settings_image_size_is_the_cifar_loaders():
    from export.data.cifar10_data import INPUT_SIZE

    assert INPUT_SIZE == (settings.CIFAR_IMAGE_SIZE, settings.CIFAR_IMAGE_SIZE)
