"""llmrelay: an AI gateway. One URL and one gateway key in front of every model."""

__version__ = "0.1.0"
