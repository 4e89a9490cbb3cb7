"""``python -m beatdance.cli`` runs the command-line interface."""

from . import main

if __name__ == "__main__":
    main()
