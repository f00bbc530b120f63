"""The tie declaration: a target leaf equal to a map of a source leaf."""

from __future__ import annotations

import dataclasses
import math

from toolkit.transforms._maps import TieMap, parse_map
from toolkit.transforms._paths import Path, path_str


@dataclasses.dataclass(frozen=True, repr=False)
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

    ``weight`` and ``source_weight`` weight the copies in the gradient merge: the tie group's
    gradient is ``source_weight * g_source + weight * mapᵀ(g_target)`` (summed over the
    group's ties, each copy's own gradient weighted once, before chains fold into the root).
    Tied embeddings use this to scale down the input side's gradient, which the output side
    dominates early in training. ``source_weight`` belongs to the group's root: ties from the
    same root must agree on it, and a source that is itself a target is weighted by its own
    tie's ``weight``.

    Example:
        >>> Tie("embed", "unembed", "transpose")
        Tie(source='embed', target='unembed', map=parse_map('transpose'))
        >>> str(Tie("embed", "unembed", "transpose", source_weight=0.5))
        'embed -> unembed (transpose; gradient 0.5 * embed + 1 * unembed)'
        >>> str(Tie("lm/embed/embeddings", lambda p: p["lm/out"]["w"], "transpose"))
        'lm/embed/embeddings -> <lambda> ... (transpose)'
    """

    source: Path
    target: Path
    map: TieMap = "identity"  # type: ignore[assignment]  # any parse_map spec; stored parsed
    weight: float = 1.0
    source_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "map", parse_map(self.map))
        for role in ("weight", "source_weight"):
            value = getattr(self, role)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value))
            ):
                raise ValueError(
                    f"tie {path_str(self.source)} -> {path_str(self.target)}: {role} "
                    f"{value!r} must be a finite number (1.0 leaves the copy's gradient as is)"
                )
            object.__setattr__(self, role, float(value))
        for role in ("source", "target"):
            path = getattr(self, role)
            if not ((isinstance(path, str) and path) or isinstance(path, tuple) or callable(path)):
                raise ValueError(
                    f"tie {role} {path!r} must be a dotted path such as 'dec.weight', a key "
                    "path, or a function from the pytree to the leaf such as "
                    "lambda m: m.dec.weight"
                )

    def __repr__(self) -> str:
        fields = f"source={self.source!r}, target={self.target!r}, map={self.map!r}"
        for role in ("weight", "source_weight"):
            if getattr(self, role) != 1.0:  # shown only where they change the merge
                fields += f", {role}={getattr(self, role)!r}"
        return f"Tie({fields})"

    def __str__(self) -> str:
        source, target = path_str(self.source), path_str(self.target)
        if self.weight == 1.0 and self.source_weight == 1.0:
            return f"{source} -> {target} ({self.map})"
        merge = f"{self.source_weight:g} * {source} + {self.weight:g} * {target}"
        return f"{source} -> {target} ({self.map}; gradient {merge})"
