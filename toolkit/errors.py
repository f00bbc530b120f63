"""Errors the toolkit raises for bad user input."""


class ConfigError(ValueError):
    """Bad user input (config file, experiment reference, CLI argument).

    The message names the file and the key path and says what would be valid; the CLI
    prints it without a traceback and exits with code 2.
    """
