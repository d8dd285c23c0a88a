"""Command groups of the ``scopeflow`` CLI that live outside ``cli.py``."""
