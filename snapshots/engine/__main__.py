import sys

from snapshots.engine.cli import main

sys.exit(main())
