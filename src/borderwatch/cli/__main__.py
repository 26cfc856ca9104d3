"""``python -m borderwatch.cli``: the same as the ``borderwatch`` command."""

from borderwatch.cli import main

main(prog_name="borderwatch")
