"""``python -m lambdalytics.cli``: the ``lambdalytics`` command (child processes of ``up`` use it)."""

from lambdalytics.cli.commands import app

app()
