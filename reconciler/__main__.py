"""`python -m reconciler` runs the odooops command."""

from reconciler.cli.main import main

main()
