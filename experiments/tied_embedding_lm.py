"""A character-level language model whose output layer is the input embedding, transposed.

Weight tying (Press & Wolf 2017) is the most common tie in practice: the embedding matrix
``E`` (vocab × dim) that turns characters into vectors is reused, transposed, as the output
projection that turns the hidden state back into one logit per character. The model here is
small enough to train in a few seconds with every strategy:

    e_i    = onehot(c_i) @ E                      the ``context`` previous characters
    h      = tanh(concat(e_1, ..., e_n) @ W + b)  (batch × dim)
    logits = h @ head.weight + c                  head.weight = tie("embed.weight", "transpose")
    loss   = mean cross-entropy of the next character

``E`` therefore receives gradient from two places: the input lookup (through ``embed.weight``)
and the output projection (through ``head.weight``, a transposed view of the same memory).

What goes wrong and where:

- ``implicit-identity`` credits ``embed.weight`` with the lookup's part only: ``head.weight`` is
  a view created outside the loss, so its gradient stays with the view. SGD that updates every
  listed param in place still takes the right step when both are listed (the view writes
  through); with only the embedding listed (``tied-output-source-only``, what a de-duplicating
  params collector gives) the output projection's part is lost. Adam on the two partials is
  wrong even when both are listed: it normalises each part separately.
- ``explicit`` gives the two partials as separate copies; stateful optimizers then move the
  copies apart (tie drift).
- ``implicit-storage``, ``explicit-merged``, ``explicit-shared`` and ``tied(adam)`` see one
  parameter and are exact.

The text is ``data/tied_lm.txt`` (written for this project); the batch is a fixed set of
``(context, next character)`` windows drawn from it with the case's data seed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, ParamTree, tie

DATA_DIR = Path(__file__).resolve().parent / "data"


@lru_cache(maxsize=4)
def load_text(name: str = "tied_lm.txt") -> tuple[str, tuple[str, ...]]:
    """Reads a text from ``experiments/data`` and returns it with its sorted vocabulary.

    Args:
        name: a file name inside ``experiments/data``.

    Returns:
        ``(text, vocab)``: the text with runs of blank lines collapsed, and its distinct
        characters in sorted order (the index of a character is its token id).

    Raises:
        FileNotFoundError: no such file, with the files that exist.
    """
    path = DATA_DIR / name
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in DATA_DIR.glob("*.txt")))
        raise FileNotFoundError(f"no text {name!r} in {DATA_DIR}; available: {have}")
    text = "\n".join(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text, tuple(sorted(set(text)))


def encode(text: str, vocab: tuple[str, ...]) -> np.ndarray:
    """Token ids of ``text`` under ``vocab`` (int64)."""
    index = {ch: i for i, ch in enumerate(vocab)}
    return np.fromiter((index[ch] for ch in text), dtype=np.int64, count=len(text))


def _windows(
    tokens: np.ndarray, context: int, batch: int, vocab_size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A fixed batch of windows as one-hot arrays (one-hot keeps the loss numpy-portable)."""
    starts = rng.choice(len(tokens) - context, size=batch, replace=False)
    ctx = tokens[starts[:, None] + np.arange(context)[None, :]]
    nxt = tokens[starts + context]
    eye = np.eye(vocab_size)
    return {
        "context": eye[ctx],
        "target": eye[nxt],
    }


def _hidden(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """The hidden state: the context's embeddings concatenated, mixed, squashed."""
    context = data["context"]
    embedded = [context[:, i, :] @ p.embed.weight for i in range(context.shape[1])]
    return np.tanh(np.concatenate(embedded, axis=1) @ p.mix.weight + p.mix.bias)


def loss_tied(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Cross-entropy with the output projection read through the tied view ``head.weight``."""
    logits = _hidden(np, p, data) @ p.head.weight + p.head.bias
    return -np.mean(np.sum(data["target"] * np.log_softmax(logits, axis=1), axis=1))


def loss_parent(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Cross-entropy with the output projection written as ``head.weight.parent.T``.

    The transpose is taken inside the loss, from the embedding itself, as
    ``h @ E.T`` in a hand-written model: every strategy sees one parameter.
    """
    logits = _hidden(np, p, data) @ p.head.weight.parent.T + p.head.bias
    return -np.mean(np.sum(data["target"] * np.log_softmax(logits, axis=1), axis=1))


def cases(
    text: str = "tied_lm.txt",
    context: int = 4,
    dim: int = 16,
    batch: int = 64,
    embed_scale: float = 0.3,
) -> list[Case]:
    """The tied-embedding language model, with both aliases listed and with the source only.

    Args:
        text: a file in ``experiments/data``.
        context: number of previous characters the model sees.
        dim: embedding and hidden size.
        batch: number of (context, next character) windows in the fixed batch.
        embed_scale: standard deviation of the embedding's initial values.

    Returns:
        ``tied-output-all-aliases``, ``tied-output-source-only`` and ``tied-output-parent``.
    """
    body, vocab = load_text(text)
    tokens = encode(body, vocab)
    v = len(vocab)
    if batch > len(tokens) - context:
        raise ValueError(f"batch={batch} exceeds the {len(tokens) - context} windows of {text!r}")

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return _windows(tokens, context, batch, v, rng)

    params = {
        "embed.weight": Param((v, dim), scale=embed_scale),
        "mix.weight": Param((context * dim, dim), init="glorot"),
        "mix.bias": Param((dim,), init="zeros"),
        "head.weight": tie("embed.weight", "transpose"),
        "head.bias": Param((v,), init="zeros"),
    }
    others = ("mix.weight", "mix.bias", "head.bias")
    shape = f"vocab {v}, dim {dim}, context {context}, batch {batch}"
    return [
        Case(
            "tied-output-all-aliases",
            params,
            loss_tied,
            wrt=("embed.weight", "head.weight", *others),
            data=data,
            description=(
                f"logits = tanh(concat(onehot @ E) @ W + b) @ head.weight, head.weight = Eᵀ "
                f"(a view); Params lists E and its view ({shape})"
            ),
        ),
        Case(
            "tied-output-source-only",
            params,
            loss_tied,
            wrt=("embed.weight", *others),
            data=data,
            description=(
                "same model; Params lists E only (a de-duplicating collector): the output "
                "projection's part reaches E only through the view"
            ),
        ),
        Case(
            "tied-output-parent",
            params,
            loss_parent,
            wrt=("embed.weight", *others),
            data=data,
            description=(
                "same model written h @ head.weight.parent.T: the transpose is taken inside "
                "the loss, so every strategy sees one parameter"
            ),
        ),
    ]
