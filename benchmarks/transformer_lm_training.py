"""Wall time of one seed of the transformer LM study: its six training runs, one after another.

Each run is a (case, strategy) pair of ``benchmarks/transformer_lm.toml`` trained for the
config's ``steps`` with AdamW under a linear warmup and a cosine decay, from the initial
values that ``--seed`` draws, through :func:`toolkit.runner.strategies.make_trainer`. The
time of a run includes building its trainer (the JAX strategies compile their step there).
The trainers keep one batch for every step; a new batch each step has the same shapes, so it
costs the same.

Run, one thread per process (multi-threaded OpenBLAS on busy cores made the tape's step ten
times slower, and XLA's thread pool halved the JAX step's speed)::

    export OPENBLAS_NUM_THREADS=1
    export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    python benchmarks/transformer_lm_training.py [--seed 0] [--steps 800]

Example:
    >>> [case for case, _ in RUNS].count("tied-all-aliases")
    4
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import numpy as np
import optax
from toolkit.experiments import transformer_lm

from toolkit.runner.strategies import make_trainer

CONFIG = Path(__file__).resolve().parent / "transformer_lm.toml"
RUNS = (
    ("untied", "explicit-shared"),
    ("tied-all-aliases", "explicit-shared"),
    ("tied-all-aliases", "tied"),
    ("tied-all-aliases", "explicit"),
    ("tied-all-aliases", "explicit-merged"),
    ("tied-source-only", "implicit-identity"),
)


def optimizer(steps: int, peak: float = 0.01, weight_decay: float = 0.01
              ) -> optax.GradientTransformation:
    """AdamW, warmed up linearly over the first 5 % of ``steps``, then cosine-decayed to
    a tenth of ``peak``."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=max(1, steps // 20), decay_steps=steps,
        end_value=peak / 10)
    return optax.adamw(schedule, weight_decay=weight_decay)


def main() -> None:
    """Trains each run of :data:`RUNS` and prints its wall time, then the total."""
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config["seed"])
    parser.add_argument("--steps", type=int, default=config["train"]["steps"])
    args = parser.parse_args()
    dtype = np.dtype(config["dtype"])
    cases = {c.name: c for c in transformer_lm.cases(**config["hyperparameters"])}
    total = 0.0
    print(f"seed {args.seed}, {args.steps} steps, {dtype}")
    for case_name, strategy in RUNS:
        case = cases[case_name]
        start = time.perf_counter()
        trainer = make_trainer(strategy, case, case.initial_values(args.seed, dtype),
                               case.make_data(args.seed, dtype), case.wrt,
                               optimizer(args.steps))
        losses = [trainer.step() for _ in range(args.steps)]
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{case_name:18s} {strategy:18s} {seconds:7.1f} s  "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}  drift {trainer.tie_drift():.2e}",
              flush=True)
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
