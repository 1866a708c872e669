"""Experiments from config files: the config schema, run directories, summaries and the CLI.

This layer knows nothing of XLA; it calls the engine through `gdkit.sweep` and the registries.
"""
