"""codyn: dynamic LLM routing for coding tasks."""

__version__ = "0.1.0"
