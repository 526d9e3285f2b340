"""This folder is also the package ``streams.default_rules`` (pyproject.toml): the default pack ships in the wheel.

It holds no code; streams/config.py finds the folder through the package without importing it.
"""
