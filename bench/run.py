"""Run the benchmark: ``python bench/run.py [options]`` (or ``bench/run``, which installs the
tools first). ``--help`` lists the options; bench/README.md explains what is measured."""

from __future__ import annotations

import sys
from pathlib import Path

# The harness reuses the test suite's launchers and image builders (tests/support).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
