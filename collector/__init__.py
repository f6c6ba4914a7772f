"""Quant Atlas collector: measure llama.cpp speed and quality, write versioned YAML records."""

__version__ = "0.1.0"
