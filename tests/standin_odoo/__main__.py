"""`python -m standin_odoo ...` runs the stand-in `odoo` command."""

import sys

from .cli import main

sys.exit(main())
