"""Wall time of the finite-difference reference on a ~100k-parameter tied model.

Buffers above 4096 elements get random directional checks (16 by default), so the cost is
a few dozen loss evaluations per storage and alias, not one per element.

Run: ``python benchmarks/reference_speed.py``.
"""

from __future__ import annotations

import time

from toolkit.experiment import Case, Param, tie
from toolkit.runner.reference import compute_reference


def tied_mlp(n: int = 320, h: int = 320, batch: int = 64) -> Case:
    """An autoencoder whose decoder is the encoder weight's transpose: n*h + h + n params."""

    def loss(np, p, d):
        hidden = np.tanh(d["x"] @ p.enc.weight.T + p.enc.bias)
        out = hidden @ p.dec.weight.T + p.dec.bias
        return np.mean(np.square(out - d["x"]))

    return Case(
        "tied_mlp",
        {
            "enc.weight": Param((h, n), init="glorot"),
            "enc.bias": Param((h,), init="zeros"),
            "dec.weight": tie("enc.weight", "transpose"),
            "dec.bias": Param((n,), init="zeros"),
        },
        loss,
        wrt=("enc.weight", "dec.weight"),
        data=lambda rng: {"x": rng.standard_normal((batch, n))},
    )


def main() -> None:
    case = tied_mlp()
    values = case.initial_values(0)
    data = case.make_data(0)
    n_params = sum(v.size for v in values.values())
    start = time.perf_counter()
    ref = compute_reference(case, values, data, directions=16)
    elapsed = time.perf_counter() - start
    modes = ", ".join(f"{s}: {r.mode}" for s, r in ref.storages.items())
    print(f"reference on {n_params} parameters ({modes}): {elapsed:.2f} s")


if __name__ == "__main__":
    main()
