"""Importers: existing llama-bench and llama-perplexity output, and transcribed published figures, as records."""
