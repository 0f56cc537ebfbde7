"""``python -m launcher``."""

from __future__ import annotations

from launcher.cli import main

if __name__ == "__main__":  # not when a spawned process re-imports this module
    raise SystemExit(main())
