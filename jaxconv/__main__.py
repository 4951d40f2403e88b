"""``python -m jaxconv``: the same as the ``jaxconv`` command."""

import sys

from jaxconv.cli import main

sys.exit(main())
