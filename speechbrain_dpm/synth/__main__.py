"""``python -m speechbrain_dpm.synth {iemocap,meld} --out DIR ...``."""

import sys

from speechbrain_dpm.synth.cli import main

if __name__ == "__main__":
    sys.exit(main())
