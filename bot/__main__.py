"""``python -m bot`` is the same as the ``pimbot`` command."""

from bot.app.cli import main

if __name__ == "__main__":
    main()
