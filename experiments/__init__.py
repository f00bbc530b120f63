"""Experiments shipped with aliasgrad; each module defines ``cases(**hyperparameters)``."""
