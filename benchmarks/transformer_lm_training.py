"""Wall time of one seed of the transformer LM study: its six training runs, one after another.

Each run is a (case, strategy) pair of ``[train.strategies]`` in
``configs/transformer_lm.toml``, trained for the config's ``steps`` with its optimizer (AdamW
under a linear warmup and a cosine decay), from the initial values that ``--seed`` draws,
with a new batch each step (the experiment's ``train_batch``), through
:func:`toolkit.runner.strategies.make_trainer`. The time of a run includes building its
trainer (the JAX strategies compile their step there); it leaves out the runner's gradient
checks and the baseline run the runner adds to ``tied-source-only``.

Run, one thread per process (multi-threaded OpenBLAS on busy cores made the tape's step ten
times slower, and XLA's thread pool halved the JAX step's speed)::

    export OPENBLAS_NUM_THREADS=1
    export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    python benchmarks/transformer_lm_training.py [--seed 0] [--steps 800]

Example:
    >>> ("tied-all-aliases", "explicit") in runs(tomllib.loads(CONFIG.read_text()))
    True
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import optax
from toolkit.experiments import transformer_lm

from toolkit.runner.strategies import make_trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "transformer_lm.toml"


def runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The config's ``(case, strategy)`` training pairs, in the order the table lists them."""
    return [(case, strategy) for case, strategies in config["train"]["strategies"].items()
            for strategy in strategies]


def optimizer(table: dict[str, Any], steps: int) -> optax.GradientTransformation:
    """The optax optimizer a ``[[train.optimizers]]`` table names, its warmup-and-decay
    schedule rescaled from the table's ``decay_steps`` to ``steps``."""
    kwargs = {k: v for k, v in table.items() if k not in ("name", "label")}
    rate = dict(kwargs.pop("learning_rate"))
    warmup = max(1, round(rate["warmup_steps"] * steps / rate["decay_steps"]))
    schedule = getattr(optax, rate.pop("schedule"))(
        **{**rate, "warmup_steps": min(warmup, steps - 1), "decay_steps": steps})
    return getattr(optax, table["name"])(learning_rate=schedule, **kwargs)


def main() -> None:
    """Trains each run of the config and prints its wall time, then the total."""
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config["seed"])
    parser.add_argument("--steps", type=int, default=config["train"]["steps"])
    args = parser.parse_args()
    dtype = np.dtype(config["dtype"])
    cases = {c.name: c for c in transformer_lm.cases(**config["hyperparameters"])}
    total = 0.0
    print(f"seed {args.seed}, {args.steps} steps, {dtype}")
    for case_name, strategy in runs(config):
        case = cases[case_name]
        start = time.perf_counter()
        data = case.make_data(args.seed, dtype)
        trainer = make_trainer(strategy, case, case.initial_values(args.seed, dtype), data,
                               case.wrt, optimizer(config["train"]["optimizers"][0], args.steps))
        losses = [trainer.step(transformer_lm.train_batch(data, step))
                  for step in range(args.steps)]
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{case_name:18s} {strategy:18s} {seconds:7.1f} s  "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}  drift {trainer.tie_drift():.2e}",
              flush=True)
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
