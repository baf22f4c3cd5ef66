"""The sans-IO core: the machine, the engine and what they are fed and return.

Nothing here reads a clock, sleeps or does IO (an import-linter contract in pyproject.toml
holds it to that); the adapters around it (runner, backends, audio, web) do.
"""
