"""The tie declaration: a target leaf equal to a map of a source leaf."""

from __future__ import annotations

import dataclasses

from toolkit.transforms._maps import TieMap, parse_map
from toolkit.transforms._paths import Path, path_str


@dataclasses.dataclass(frozen=True)
class Tie:
    """Declares that the leaf at ``target`` equals ``map(leaf at source)``.

    Paths are dotted strings (``"dec.weight"``, ``"layers.0.w"``: dict keys, attribute names of
    NamedTuples and registered dataclasses, integer positions in lists and tuples), the same
    keys joined by ``/`` (Haiku's ``"lm/embed/embeddings"`` for ``params["lm/embed"]
    ["embeddings"]``), key paths (tuples of jax path keys as returned by
    ``jax.tree_util.tree_flatten_with_path``, or of plain keys: ``("layers", 0, "w")``), or
    functions from the pytree to the leaf (``lambda m: m.out.weight``, as in
    ``equinox.tree_at``). A ``flax.nnx.Variable`` counts as one leaf, named by its attribute
    path (``"embed.embedding"``; ``"embed.embedding.value"`` is accepted too). Paths are
    resolved against each pytree passed to ``init`` and ``update``. The map is anything
    :func:`parse_map` reads; it is stored parsed.

    Example:
        >>> Tie("embed", "unembed", "transpose")
        Tie(source='embed', target='unembed', map=parse_map('transpose'))
        >>> str(Tie("lm/embed/embeddings", lambda p: p["lm/out"]["w"], "transpose"))
        'lm/embed/embeddings -> <lambda> ... (transpose)'
    """

    source: Path
    target: Path
    map: TieMap = "identity"  # type: ignore[assignment]  # any parse_map spec; stored parsed

    def __post_init__(self) -> None:
        object.__setattr__(self, "map", parse_map(self.map))
        for role in ("source", "target"):
            path = getattr(self, role)
            if not ((isinstance(path, str) and path) or isinstance(path, tuple) or callable(path)):
                raise ValueError(
                    f"tie {role} {path!r} must be a dotted path such as 'dec.weight', a key "
                    "path, or a function from the pytree to the leaf such as "
                    "lambda m: m.dec.weight"
                )

    def __str__(self) -> str:
        return f"{path_str(self.source)} -> {path_str(self.target)} ({self.map})"
