"""``python -m raymer.cli``: the ``raymer`` command (what submitted Ray jobs run)."""

import sys

from raymer.cli import main

sys.exit(main())
