"""The error every validator of this project raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is out of range or inconsistent; the message names it and what is allowed."""
