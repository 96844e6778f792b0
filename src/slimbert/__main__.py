"""``python -m slimbert`` runs the CLI."""

from slimbert.cli import main

main()
