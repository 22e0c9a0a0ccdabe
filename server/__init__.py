"""Hearth's server: an OpenAI-compatible API and Text-to-SQL over llama-cpp-python."""

__version__ = "0.1.0"
