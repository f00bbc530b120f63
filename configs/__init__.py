"""The configs shipped with aliasgrad, installed as ``toolkit.configs`` (TOML files only)."""
