"""The default demo that ``aliasgrad run`` runs with no config.

Two of the repository's ``configs/`` (installed with the package as ``toolkit.configs``):
``seed.toml`` and ``tied_autoencoder.toml``: the nine aliasing cases of Zygote's
implicit ``Params`` with every strategy and Zygote's printed values as recorded expectations,
and the tied autoencoder (``Dense(5, 2)`` and a decoder using the transposed encoder weight)
trained with Adam and SGD, with both aliases in Params and with only the encoder weight.

Example:
    >>> [name for name, _ in demo_configs()]
    ['seed.toml', 'tied_autoencoder.toml']
"""

from importlib import resources

DEMO_FILES = ("seed.toml", "tied_autoencoder.toml")


def demo_configs() -> list[tuple[str, str]]:
    """(file name, TOML text) of each demo config."""
    folder = resources.files("toolkit.configs")
    return [(name, (folder / name).read_text(encoding="utf-8")) for name in DEMO_FILES]
