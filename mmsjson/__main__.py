"""``python -m mmsjson`` runs the command line."""

import sys

from mmsjson.cli import main

sys.exit(main())
