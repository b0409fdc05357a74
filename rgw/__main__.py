"""``python -m rgw`` runs the ``rack-gateway`` command line."""

from rgw.cli import main

main()
