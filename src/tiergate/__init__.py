"""tiergate: governed LLM agent runs on Temporal. The model proposes, deterministic code decides."""

__version__ = "0.1.0"
