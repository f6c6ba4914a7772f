"""What every layer stands on (stdlib, PyYAML and ruamel only; nothing of the collector's own above it).

- `errors`: CollectorError, the one expected-error type, and how messages quote values.
- `files`: atomic writes, owned temporary names, work folders.
- `cache`: the one cache scheme (where, keys, stamps, the on/off switch).
- `parallel`: a pure function over many items on every core.
- `progress`: the observer long runs report to.
- `yamlcheck`: hand-written YAML with errors naming file, line and key.
- `stats`: summaries, percentiles and the one rule for "the data cannot tell these apart".
- `lock`: one measurement per host at a time.
"""

__all__ = ["cache", "errors", "files", "lock", "parallel", "progress", "stats", "yamlcheck"]
