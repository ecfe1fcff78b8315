"""The platform's user-facing error."""


class ConfigError(ValueError):
    """Bad user input: the message is one line, fit to print as it is."""
