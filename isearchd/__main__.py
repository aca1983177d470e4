"""``python -m isearchd``: run the daemon in the foreground."""

import sys

from isearchd.daemon.main import main

sys.exit(main())
