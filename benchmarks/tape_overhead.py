"""Tape overhead: microseconds per recorded op, and the matmul chain against hand-written NumPy.

Both figures come from one run (same process, same BLAS, interleaved repeats, best of N):

* a chain of 100 small elementwise ops on shape (4,) (``tanh``, ``* w``, ``+ b`` repeated),
  forward + backward through ``toolkit.tape.gradient``, divided by 100;
* a chain of ten 512×512 matmuls, forward + backward, against the same computation written by
  hand with NumPy (activations kept, ``W.T``/``h.T`` products in reverse).

Goals: at most 3 µs per op, at most 1.10× hand-written NumPy.

Run: ``python benchmarks/tape_overhead.py``
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

CHAIN_OPS = 100
MATMULS = 10
N = 512


def _best(fn: Callable[[], object], repeats: int, inner: int) -> float:
    """The best mean time of ``inner`` calls over ``repeats`` rounds, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def elementwise_chain() -> Callable[[], object]:
    """``gradient`` of a 100-op chain on shape (4,): 33 × (tanh, * w, + b) and a final sum."""
    rng = np.random.default_rng(0)
    w = tp.array(rng.standard_normal(4))
    b = tp.array(rng.standard_normal(4))
    x = rng.standard_normal(4)
    ps = tp.Params([w, b])

    def f() -> tp.Array:
        h = tnp.tanh(x * w)
        for _ in range((CHAIN_OPS - 2) // 3):
            h = tnp.tanh(h * w + b)
        return tnp.sum(h)

    return lambda: tp.gradient(f, ps)


def matmul_chains() -> tuple[Callable[[], object], Callable[[], object]]:
    """The tape's and hand-written NumPy's forward + backward of ``sum(x @ W1 @ ... @ W10)``."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, N)) / np.sqrt(N)
    ws_np = [rng.standard_normal((N, N)) / np.sqrt(N) for _ in range(MATMULS)]
    ws = [tp.array(w) for w in ws_np]
    ps = tp.Params(ws)

    def f() -> tp.Array:
        h = x
        for w in ws:
            h = h @ w
        return tnp.sum(h)

    def by_hand() -> list[np.ndarray]:
        hs = [x]
        for w in ws_np:
            hs.append(hs[-1] @ w)
        _ = hs[-1].sum()
        g = np.ones_like(hs[-1])
        grads = [np.empty(0)] * MATMULS
        for i in reversed(range(MATMULS)):
            grads[i] = hs[i].T @ g
            if i:
                g = g @ ws_np[i].T
        return grads

    return (lambda: tp.gradient(f, ps)), by_hand


def main() -> None:
    """Prints both figures."""
    chain = elementwise_chain()
    chain()
    per_op = _best(chain, repeats=30, inner=50) / CHAIN_OPS
    tape_mm, hand_mm = matmul_chains()
    tape_mm(), hand_mm()
    tape_t, hand_t = float("inf"), float("inf")
    for _ in range(7):
        # Interleaved, best of 7: both sides see the same machine load.
        tape_t = min(tape_t, _best(tape_mm, repeats=1, inner=1))
        hand_t = min(hand_t, _best(hand_mm, repeats=1, inner=1))
    print(f"elementwise chain ({CHAIN_OPS} ops on shape (4,)): {per_op * 1e6:.2f} µs per op "
          f"forward+backward (goal <= 3)")
    print(f"matmul chain ({MATMULS} x {N}x{N}): tape {tape_t * 1e3:.1f} ms, hand-written NumPy "
          f"{hand_t * 1e3:.1f} ms, ratio {tape_t / hand_t:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
