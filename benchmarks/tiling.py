"""Entry point named in issue 3: tiles/s of detect + tile (and encoder tiles/s) against the naive way.

The implementation lives in ``benchmarks/tile_embedding.py`` (one copy); this script only runs it. Run:

    python benchmarks/tiling.py [--big 20000] [--naive-max-gb 6] [--no-embed] [--out PATH]

Writes benchmarks/results/tile_embedding.json unless ``--out`` says otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tile_embedding import main  # noqa: E402

if __name__ == "__main__":
    main()
