"""CamelidCoin: a proof-of-work chain where clients pay for verified LLM completions."""
__version__ = "0.1.0"
