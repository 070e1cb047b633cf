"""Command-line options shared by every exporter, and turning them into frozen settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from export.gate import GatePolicy


def add_training_args(p: argparse.ArgumentParser, epochs: int, batch_size: int, learning_rate: float) -> None:
    """Epochs, batch size, learning rate, seeds, logging and resume options."""
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    g.add_argument("--batch-size", type=int, default=batch_size, help=f"batch size (default {batch_size})")
    g.add_argument("--learning-rate", type=float, default=learning_rate,
                   help=f"Adam learning rate (default {learning_rate})")
    g.add_argument("--val-split", type=float, default=0.1,
                   help="fraction of training images held out for validation, stratified (default 0.1)")
    g.add_argument("--limit", type=int, default=None, help="use a stratified subset of N training images")
    g.add_argument("--seed", type=int, default=42, help="seed for splits, shuffling and initialisation")
    g.add_argument("--augment", action="store_true", help="random flip/shift augmentation (off by default)")
    g.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop when val_loss has not improved for PATIENCE epochs (restores best weights)")
    g.add_argument("--logdir", type=Path, default=None, help="TensorBoard log directory")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last epoch checkpoint")
    g.add_argument("--strict", action="store_true", help="fail on the first corrupt image instead of skipping it")
    g.add_argument("--cache-dir", type=Path, default=Path(".cache"),
                   help="where extracted data sets and training checkpoints live (default .cache)")


def add_publish_args(p: argparse.ArgumentParser, name: str) -> None:
    """Model repository, version and gate options."""
    g = p.add_argument_group("publishing")
    g.add_argument("--name", default=name, help=f"model name in the repository (default {name})")
    g.add_argument("--model-base-path", type=Path, default=Path("models"),
                   help="model repository root (default models)")
    g.add_argument("--version", default="auto", help="'auto' (highest existing + 1) or an integer (default auto)")
    g.add_argument("--min-accuracy", type=float, default=0.0, help="gate: minimum test accuracy (default 0)")
    g.add_argument("--max-regression", type=float, default=0.01,
                   help="gate: allowed accuracy drop against the previous version (default 0.01)")
    g.add_argument("--force", action="store_true", help="publish even if accuracy regressed")
    g.add_argument("--keep", type=int, default=None, help="after publishing, keep only the newest N versions")


def gate_policy(args: argparse.Namespace) -> GatePolicy:
    """The gate thresholds from parsed arguments."""
    return GatePolicy(min_accuracy=args.min_accuracy, max_regression=args.max_regression, force=args.force)
