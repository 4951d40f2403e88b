"""``python -m jaxconv``: the same as the ``jaxconv`` command."""

from jaxconv.cli import entry

entry()
