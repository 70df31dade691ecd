"""``python -m visnet``: see :mod:`visnet.cli`."""
import sys

from .cli import main

sys.exit(main())
