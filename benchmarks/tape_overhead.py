"""Tape overhead: microseconds per recorded op, and the matmul chain against hand-written NumPy.

Both figures come from one run (same process, same BLAS, interleaved repeats, best of N):

* a chain of 100 small elementwise ops on shape (4,) (``* w``, ``+ b``, ``tanh`` repeated, then
  ``sum``), forward + backward through ``toolkit.tape.gradient``, divided by 100 (wall clock,
  and the thread's CPU time), beside the same chain differentiated by hand in NumPy (what the
  ufunc calls alone cost);
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


def _best(fn: Callable[[], object], repeats: int, inner: int,
          clock: Callable[[], float] = time.perf_counter) -> float:
    """The best mean time of ``inner`` calls over ``repeats`` rounds, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        for _ in range(inner):
            fn()
        best = min(best, (clock() - t0) / inner)
    return best


def elementwise_chains() -> tuple[Callable[[], tp.Grads], Callable[[], tuple[np.ndarray, ...]]]:
    """A 100-op chain on shape (4,): 33 × ``h = tanh(h * w + b)``, then ``sum``.

    Returns the tape's ``gradient`` w.r.t. ``w`` and ``b``, and the same forward + backward by
    hand in NumPy (the floor: what the ufunc calls alone cost on tiny arrays).
    """
    rng = np.random.default_rng(0)
    wv, bv, x = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    w, b = tp.array(wv), tp.array(bv)
    ps = tp.Params([w, b])
    groups = (CHAIN_OPS - 1) // 3

    def f() -> tp.Array:
        h = x
        for _ in range(groups):
            h = tnp.tanh(h * w + b)
        return tnp.sum(h)

    def by_hand() -> tuple[np.ndarray, np.ndarray]:
        hs = [x]
        for _ in range(groups):
            hs.append(np.tanh(hs[-1] * wv + bv))
        _ = hs[-1].sum()
        g = np.ones(4)
        gw, gb = np.zeros(4), np.zeros(4)
        for i in range(groups, 0, -1):
            g = g - g * hs[i] * hs[i]
            gb = gb + g
            gw = gw + g * hs[i - 1]
            g = g * wv
        return gw, gb

    gs = tp.gradient(f, ps)
    gw, gb = by_hand()
    np.testing.assert_allclose(gs[w], gw)
    np.testing.assert_allclose(gs[b], gb)
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
    best = dict.fromkeys(("tape_ew", "hand_ew", "cpu_ew", "tape_mm", "hand_mm"), float("inf"))
    round_ratios: list[float] = []
    for _ in range(15):
        # Interleaved rounds, best of each: both sides see the same machine load.
        best["tape_ew"] = min(best["tape_ew"], _best(tape_ew, repeats=3, inner=30))
        best["hand_ew"] = min(best["hand_ew"], _best(hand_ew, repeats=3, inner=30))
        # The chain is single-threaded Python: its CPU time is its cost without the waits
        # that other processes on a shared machine add to the wall clock.
        best["cpu_ew"] = min(best["cpu_ew"], _best(tape_ew, 3, 30, clock=time.thread_time))
        tape_t, hand_t = _best(tape_mm, 1, 1), _best(hand_mm, 1, 1)
        best["tape_mm"] = min(best["tape_mm"], tape_t)
        best["hand_mm"] = min(best["hand_mm"], hand_t)
        round_ratios.append(tape_t / hand_t)
    per_op, floor, cpu = (best[k] / CHAIN_OPS * 1e6 for k in ("tape_ew", "hand_ew", "cpu_ew"))
    print(f"elementwise chain ({CHAIN_OPS} ops on shape (4,)), forward+backward: "
          f"{per_op:.2f} µs per op wall, {cpu:.2f} µs per op CPU (goal <= 3); "
          f"hand-written NumPy {floor:.2f} µs per op wall")
    print(f"matmul chain ({MATMULS} x {N}x{N}), forward+backward: tape "
          f"{best['tape_mm'] * 1e3:.1f} ms, hand-written NumPy {best['hand_mm'] * 1e3:.1f} ms, "
          f"ratio {best['tape_mm'] / best['hand_mm']:.3f} (goal <= 1.10); median of the "
          f"per-round ratios {sorted(round_ratios)[len(round_ratios) // 2]:.3f}")


if __name__ == "__main__":
    main()
