"""``python -m toolkit`` runs the ``aliasgrad`` command."""

import sys

from toolkit.cli import main

sys.exit(main())
