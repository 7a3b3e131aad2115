"""``python -m assistant``: the command line (the same as the ``assistant`` command)."""

from assistant.app.cli import main

raise SystemExit(main())
