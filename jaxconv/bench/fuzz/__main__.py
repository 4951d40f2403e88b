"""``python -m jaxconv.bench.fuzz``: see `jaxconv.bench.fuzz.command`."""

import sys

from jaxconv.bench.fuzz.command import main

sys.exit(main())
