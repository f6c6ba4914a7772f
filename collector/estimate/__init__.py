"""Estimates for what nobody measured, each checked against measurements it was not fitted on.

- `arch`: the facts an estimate needs about a model: from its GGUF, or as a cited source states them
  (`models.yaml`, for imported models whose file is not here).
- `memory`: llama.cpp's model, KV, recurrent-state and compute buffers per device for a configuration, and the
  largest context that fits a memory size; `memcheck` compares it with what llama.cpp logged.
- `speed`: generation (tg) and prompt (pp) speed from memory bandwidth and per-token overhead, fitted on the
  records; `heldout`: its error on devices and models left out of the fit, which decides what is shown.
- `answer`: one question (model, device, context, KV type) answered from all of the above.

Nothing here is a measurement and nothing here is ranked with one: the site shows estimates in their own
sections, badged, and never in a recommendation, a Pareto front or a sortable ranking (docs/estimates.md).
"""
