"""Runs the assets' command line: ``python -m speechbrain_dpm.assets``.

Authors
 * speechbrain_dpm contributors 2026
"""

import sys

from speechbrain_dpm.assets.cli import main

if __name__ == "__main__":
    sys.exit(main())
