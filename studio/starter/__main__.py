"""`python -m studio.starter`: see `studio.starter.cli`."""

from .cli import main

raise SystemExit(main())
