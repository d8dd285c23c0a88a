"""``python -m scopeflow`` runs the CLI (same as the ``scopeflow`` console script)."""

from scopeflow.cli import main

main()
