"""`python -m seo_sync` is the same as the `seo-sync` console script.

For `run` (the unit's ExecStart), SIGHUP and SIGUSR1 are blocked before the imports, which take a
second or more on a busy host: one that arrives meanwhile (`systemctl reload` during a start) stays
pending until the service installs its handlers and unblocks them, instead of killing the process.
"""

import signal
import sys

if __name__ == "__main__" and "run" in sys.argv[1:]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGUSR1})

from seo_sync.cli.main import main  # imported after the mask, on purpose

if __name__ == "__main__":
    main()
