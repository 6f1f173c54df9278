"""labelwise: self-hosted zero-shot and few-shot classification (Jina/Cohere-compatible)."""

__version__ = "0.1.0"
