"""Overhead of the tie transform on a tied 32k × 512 embedding (jitted optimizer step).

Prints, measured in one run, for an identity tie (PyTorch style: ``lm_head.weight`` is the
embedding) and a transpose tie (a ``(dim, vocab)`` output kernel):
  * ``tied(adam)`` on the untied tree (embedding + its copy) against ``adam`` on the shared tree
    (the embedding once) and against plain ``adam`` on the untied tree;
  * the optimizer state bytes of all three;
  * the bytes-moved floor those ratios are bounded by (weight-sized arrays read or written);
  * the loss-side path (:func:`toolkit.transforms.loss_on_sources`: ``adam`` on the sources,
    each target computed inside the loss) against ``adam`` on the shared model, for a whole
    training step (gradient of a small language-model loss, update, apply), with
    ``tied(adam)`` and plain ``adam`` on the untied tree beside them: there the gradients are
    the step's own temporaries, as in a real training loop.

A step is ``update`` + ``apply_updates`` under ``jax.jit`` with params and state donated, timed
with ``block_until_ready`` after warmup; the figure is the median (and min) of the repeats,
taken round-robin across the three optimizers.

Run: ``.venv/bin/python benchmarks/transform_overhead.py [--vocab 32768] [--dim 512]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

# Runs from a plain checkout, without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.transforms import Tie, loss_on_sources, strip_targets, tied

F32_BYTES = 4


def _step_fn(tx: optax.GradientTransformation) -> Callable[..., Any]:
    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


class _Run:
    """One optimizer on one tree, with its own donated params and state."""

    def __init__(self, tx: optax.GradientTransformation, params: Any, grads: Any) -> None:
        self.state = tx.init(params)
        self.state_bytes = sum(x.nbytes for x in jax.tree.leaves(self.state))
        # Donation consumes the inputs, so each run owns fresh copies.
        self.params = jax.tree.map(jnp.copy, params)
        self.grads = grads
        self.step = _step_fn(tx)
        self.times: list[float] = []

    def __call__(self) -> float:
        start = time.perf_counter()
        self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return time.perf_counter() - start


def _measure(runs: dict[str, _Run], repeats: int, warmup: int) -> None:
    for run in runs.values():
        for _ in range(warmup):
            run()
    # Round-robin, so load from other processes on the machine hits every variant alike.
    for _ in range(repeats):
        for run in runs.values():
            run.times.append(run())


def _runs(vocab: int, dim: int, map_: str) -> dict[str, _Run]:
    key_w, key_g1, key_g2 = jax.random.split(jax.random.key(0), 3)
    shape = (vocab, dim)
    w = jax.random.normal(key_w, shape, jnp.float32)
    g_embed = jax.random.normal(key_g1, shape, jnp.float32)
    target_shape = shape[::-1] if map_ == "transpose" else shape
    g_unembed = jax.random.normal(key_g2, target_shape, jnp.float32)
    tie = Tie("embed", "unembed", map_)

    untied = {"embed": w, "unembed": tie.map.apply(w)}
    untied_grads = {"embed": g_embed, "unembed": g_unembed}
    # The shared model's gradient is the merged one: what jax.grad returns through the map.
    shared_grads = {"embed": tie.map.accumulate(g_embed, g_unembed)}
    return {
        "tied(adam), untied tree": _Run(tied(optax.adam(1e-3), [tie]), untied, untied_grads),
        "adam, shared tree": _Run(optax.adam(1e-3), {"embed": w}, shared_grads),
        "adam, untied tree": _Run(optax.adam(1e-3), untied, untied_grads),
    }


class _TrainRun:
    """A whole training step of one loss and optimizer, params and state donated."""

    def __init__(
        self, tx: optax.GradientTransformation, params: Any, loss_fn: Callable[..., Any]
    ) -> None:
        self.state = tx.init(params)
        self.state_bytes = sum(x.nbytes for x in jax.tree.leaves(self.state))
        self.params = jax.tree.map(jnp.copy, params)
        self.times: list[float] = []

        def step(params: Any, state: Any) -> tuple[Any, Any]:
            grads = jax.grad(loss_fn)(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        self.step = jax.jit(step, donate_argnums=(0, 1))

    def __call__(self) -> float:
        start = time.perf_counter()
        self.params, self.state = self.step(self.params, self.state)
        jax.block_until_ready((self.params, self.state))
        return time.perf_counter() - start


def _loss_side_runs(vocab: int, dim: int, map_: str, batch: int) -> dict[str, _TrainRun]:
    key_w, key_tokens = jax.random.split(jax.random.key(1))
    w = jax.random.normal(key_w, (vocab, dim), jnp.float32) / 8
    tokens = jax.random.randint(key_tokens, (batch + 1,), 0, vocab)
    tie = Tie("embed", "unembed", map_)

    def untied_loss(params: Any) -> jax.Array:
        hidden = jnp.tanh(params["embed"][tokens[:-1]])
        unembed = params["unembed"]
        logits = hidden @ (unembed if map_ == "transpose" else unembed.T)
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[1:]).mean()

    def shared_loss(params: Any) -> jax.Array:  # the copy computed inside, by hand
        return untied_loss({**params, "unembed": tie.map.apply(params["embed"])})

    untied = {"embed": w, "unembed": tie.map.apply(w)}
    return {
        "loss-side adam, sources": _TrainRun(
            optax.adam(1e-3), strip_targets(untied, [tie]), loss_on_sources(untied_loss, [tie])
        ),
        "adam, shared model": _TrainRun(optax.adam(1e-3), {"embed": w}, shared_loss),
        "tied(adam), untied tree": _TrainRun(tied(optax.adam(1e-3), [tie]), untied, untied_loss),
        "adam, untied tree": _TrainRun(optax.adam(1e-3), untied, untied_loss),
    }


def loss_side(vocab: int, dim: int, batch: int, repeats: int, warmup: int) -> None:
    """Prints the loss-side path's whole training step against the shared model's."""
    print(f"\nloss-side path: whole training step, {batch} tokens a step")
    for map_ in ("identity", "transpose"):
        runs = _loss_side_runs(vocab, dim, map_, batch)
        _measure(runs, repeats, warmup)
        shared_time = statistics.median(runs["adam, shared model"].times)
        print(f"\ntie map {map_!r}")
        print(f"{'optimizer':<26}{'step ms':>16}{'state MiB':>11}{'this ÷ shared':>15}")
        for name, run in runs.items():
            median = statistics.median(run.times)
            print(
                f"{name:<26}{median * 1e3:>8.1f} ({min(run.times) * 1e3:>5.1f})"
                f"{run.state_bytes / 2**20:>11.1f}{median / shared_time:>15.2f}"
            )
        tied_time = statistics.median(runs["tied(adam), untied tree"].times)
        untied_time = statistics.median(runs["adam, untied tree"].times)
        print(f"whole step, tied ÷ untied adam: {tied_time / untied_time:.2f}")
        del runs
    print(
        "\nbytes-moved floor of the loss-side path: the shared model's own program, so "
        "loss-side ÷ shared >= 1.0; of the whole tied step: the same gradient program as "
        "untied adam, and an optimizer part of 10 weight-sized arrays against 14, so "
        "tied ÷ untied >= 0.71"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="tokens a loss-side step")
    args = parser.parse_args()

    print(
        f"tied embedding {args.vocab} x {args.dim} float32 "
        f"({args.vocab * args.dim * F32_BYTES / 2**20:.0f} MiB), device {jax.devices()[0]}, "
        f"median (min) of {args.repeats} steps"
    )
    # XLA:CPU allocates an executable's temporaries on every run; glibc serves 64 MiB blocks
    # with mmap, so each step page-faults them in afresh unless malloc is told to keep them.
    print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
    # Other processes share the machine; their load shifts absolute times (ratios less so).
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for map_ in ("identity", "transpose"):
        runs = _runs(args.vocab, args.dim, map_)
        _measure(runs, args.repeats, args.warmup)
        tied_time = statistics.median(runs["tied(adam), untied tree"].times)
        print(f"\ntie map {map_!r}")
        print(f"{'optimizer':<26}{'step ms':>16}{'state MiB':>11}{'tied ÷ this':>13}")
        for name, run in runs.items():
            median = statistics.median(run.times)
            print(
                f"{name:<26}{median * 1e3:>8.1f} ({min(run.times) * 1e3:>5.1f})"
                f"{run.state_bytes / 2**20:>11.1f}{tied_time / median:>13.2f}"
            )
        del runs  # frees ~1 GiB before the next map
    # Arrays of the weight's size read or written per step: shared adam reads
    # g, m, v, p and writes m, v, p (7); tied reads g_src, g_tgt, m, v, p_src, p_tgt and writes
    # m, v, p_src, p_tgt (10); untied adam does the shared work twice (14).
    print(
        "\nbytes-moved floor, in weight-sized arrays per step: shared 7, tied 10, untied 14, "
        "so tied ÷ shared >= 1.43 and tied ÷ untied >= 0.71"
    )
    loss_side(args.vocab, args.dim, args.batch, args.repeats, args.warmup)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
