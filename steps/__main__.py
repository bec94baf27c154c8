"""``python -m steps`` is the same as the ``mlsteps`` command."""

from steps.cli import main

if __name__ == "__main__":
    main()
