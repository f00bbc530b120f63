"""Tape overhead: microseconds per recorded op, and the matmul chain against hand-written NumPy.

Both figures come from one run (same process, same BLAS, interleaved repeats, best of N):

* a chain of 100 small elementwise ops on shape (4,) (``tanh``, ``* w``, ``+ b`` repeated),
  forward + backward through ``toolkit.tape.gradient``, divided by 100, beside the same chain
  differentiated by hand in NumPy (what the ufunc calls alone cost);
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


def elementwise_chains() -> tuple[Callable[[], object], Callable[[], object]]:
    """A 100-op chain on shape (4,): ``tanh(x * w)``, 32 × (``* w``, ``+ b``, ``tanh``), ``sum``.

    Returns the tape's ``gradient`` and the same forward + backward by hand in NumPy (the
    floor: NumPy's own per-call cost on tiny arrays).
    """
    rng = np.random.default_rng(0)
    wv, bv, x = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    w, b = tp.array(wv), tp.array(bv)
    ps = tp.Params([w, b])
    groups = (CHAIN_OPS - 4) // 3

    def f() -> tp.Array:
        h = tnp.tanh(x * w)
        for _ in range(groups):
            h = tnp.tanh(h * w + b)
        return tnp.sum(h)

    def by_hand() -> tuple[np.ndarray, np.ndarray]:
        hs = [x]
        ts = [np.tanh(x * wv)]
        for _ in range(groups):
            hs.append(ts[-1])
            ts.append(np.tanh(ts[-1] * wv + bv))
        _ = ts[-1].sum()
        g = np.ones(4)
        gw, gb = np.zeros(4), np.zeros(4)
        for h, t in zip(reversed(hs), reversed(ts), strict=True):
            g = g - g * t * t
            if h is not x:
                gb = gb + g
            gw = gw + g * h
            g = g * wv
        return gw, gb

    return (lambda: tp.gradient(f, ps)), by_hand


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
    tape_ew, hand_ew = elementwise_chains()
    tape_mm, hand_mm = matmul_chains()
    best = dict.fromkeys(("tape_ew", "hand_ew", "tape_mm", "hand_mm"), float("inf"))
    for _ in range(15):
        # Interleaved rounds, best of each: both sides see the same machine load.
        best["tape_ew"] = min(best["tape_ew"], _best(tape_ew, repeats=3, inner=30))
        best["hand_ew"] = min(best["hand_ew"], _best(hand_ew, repeats=3, inner=30))
        best["tape_mm"] = min(best["tape_mm"], _best(tape_mm, repeats=1, inner=1))
        best["hand_mm"] = min(best["hand_mm"], _best(hand_mm, repeats=1, inner=1))
    per_op = best["tape_ew"] / CHAIN_OPS * 1e6
    floor = best["hand_ew"] / CHAIN_OPS * 1e6
    print(f"elementwise chain ({CHAIN_OPS} ops on shape (4,)), forward+backward: "
          f"{per_op:.2f} µs per op (goal <= 3); hand-written NumPy {floor:.2f} µs per op, "
          f"so {per_op - floor:.2f} µs per op is the tape's own work")
    print(f"matmul chain ({MATMULS} x {N}x{N}), forward+backward: tape "
          f"{best['tape_mm'] * 1e3:.1f} ms, hand-written NumPy {best['hand_mm'] * 1e3:.1f} ms, "
          f"ratio {best['tape_mm'] / best['hand_mm']:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
