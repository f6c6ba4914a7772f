"""Faithfulness: quant ladders built with llama-quantize (`quantize`), a plan's `kld:` section (`kld_plan`) and
the KLD runs through llama-perplexity (`kld`)."""

__all__ = ["kld", "kld_plan", "quantize"]
