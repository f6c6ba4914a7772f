"""`collector tune`: the fastest launch command for this host, measured.

- `search`: the pure search (what to measure next, what to keep) over a small Lab protocol.
- `lab`: the real lab: probes and trials through llama-server.
- `session`: one tune from question to record.
"""

__all__ = ["lab", "search", "session"]
