"""A tied autoencoder: ``Dense(n, h)`` then a decoder whose weight is the encoder's transpose.

The decoder weight is declared as ``tie("enc.weight", "transpose")``: one storage, two
parameters. ``n=5, h=2`` is Flux's ``m1 = Dense(5, 2); m2 = Dense(transpose(m1.weight))``.
The loss is the mean squared reconstruction error on a batch drawn from the case's rng
(rows are samples: ``x`` has shape ``(batch, n)``).

Two cases differ only in ``wrt``:

* ``aliases``: every parameter, the decoder's transposed view included (what a collector that
  keeps wrappers gives, Zygote example 3);
* ``dedup``: the decoder's view left out (what a de-duplicating collector gives: it already
  holds the encoder weight), so an identity-policy engine misses the decoder's contribution.

Example:
    >>> [(c.name, c.wrt) for c in cases(n=4, h=3)]  # doctest: +NORMALIZE_WHITESPACE
    [('aliases', ('enc.weight', 'enc.bias', 'dec.weight', 'dec.bias')),
     ('dedup', ('enc.weight', 'enc.bias', 'dec.bias'))]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, tie

ACTIVATIONS = ("tanh", "identity")


def cases(n: int = 5, h: int = 2, batch: int = 16, activation: str = "tanh") -> list[Case]:
    """The two ``wrt`` variants of the tied autoencoder.

    Args:
        n: input (and reconstruction) size.
        h: hidden size.
        batch: samples in the fixed training batch.
        activation: the encoder's activation, ``"tanh"`` or ``"identity"``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if min(n, h, batch) < 1:
        raise ValueError(f"n, h and batch must be >= 1, got n={n}, h={h}, batch={batch}")
    params = {
        "enc.weight": Param((h, n), init="glorot"),
        "enc.bias": Param((h,), init="zeros"),
        "dec.weight": tie("enc.weight", "transpose"),
        "dec.bias": Param((n,), init="zeros"),
    }

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"x": rng.standard_normal((batch, n))}

    def loss(np: Any, p: Any, data: Any) -> Any:
        x = data["x"]
        hidden = np.matmul(x, p.enc.weight.T) + p.enc.bias
        if activation == "tanh":
            hidden = np.tanh(hidden)
        recon = np.matmul(hidden, p.dec.weight.T) + p.dec.bias
        return np.mean((recon - x) ** 2)

    desc = (f"m1 = Dense({n}, {h}, {activation}); m2 = Dense(transpose(m1.weight)); "
            "mean((m2(m1(x)) .- x) .^ 2)")
    return [
        Case("aliases", params, loss, ("enc.weight", "enc.bias", "dec.weight", "dec.bias"),
             data=data, description=desc + "; Params([W, b1, W', b2])"),
        Case("dedup", params, loss, ("enc.weight", "enc.bias", "dec.bias"),
             data=data, description=desc + "; Params([W, b1, b2])"),
    ]
