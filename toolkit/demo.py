"""The embedded default demo that ``aliasgrad run`` runs with no config.

Two configs: the seed's nine cases (Zygote issue #991) with every strategy, and the tied
autoencoder (``Dense(5, 2)`` and a decoder using the transposed encoder weight) trained with
Adam and SGD, with both aliases in Params and with only the encoder weight.
"""

SEED = """\
title = "Zygote #991: gradients with aliased variables (demo)"
experiment = "experiments.aliasing"
dtype = "float64"
seed = 0
"""

TIED_AUTOENCODER = """\
title = "Tied autoencoder: Dense(5, 2) and a decoder using transpose(W) (demo)"
experiment = "experiments.tied_autoencoder"
dtype = "float64"
seed = 0

[train]
steps = 200
strategies = ["implicit-identity", "implicit-storage", "explicit", "explicit-merged",
              "explicit-shared", "tied"]
optimizers = [{ name = "adam", learning_rate = 0.01 }, { name = "sgd", learning_rate = 0.1 }]
"""

DEMO_CONFIGS: tuple[tuple[str, str], ...] = (
    ("demo-seed.toml", SEED),
    ("demo-tied-autoencoder.toml", TIED_AUTOENCODER),
)
