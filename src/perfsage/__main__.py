"""``python -m perfsage`` runs the command line."""

from perfsage.cli.main import main

main()
