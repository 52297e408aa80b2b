"""``python -m mfg_rl``: the same as the ``mfg-rl`` command."""

import sys

from mfg_rl.cli import main

if __name__ == "__main__":
    sys.exit(main())
