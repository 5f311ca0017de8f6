#!/usr/bin/env python3
"""The project's entry to python/classviz/maco_spectrum.py (see there), writing into
this folder, weights/, by default."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from classviz.maco_spectrum import *  # noqa: E402,F401,F403
from classviz import maco_spectrum as _module  # noqa: E402

if __name__ == "__main__":
    _module.main(HERE) if _module.main.__code__.co_argcount else _module.main()
