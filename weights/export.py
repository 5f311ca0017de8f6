#!/usr/bin/env python3
"""The project's entry to the exporter, python/classviz/export/ (see there), writing
into this folder, weights/, by default."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from classviz.export import main  # noqa: E402

if __name__ == "__main__":
    main(HERE)
