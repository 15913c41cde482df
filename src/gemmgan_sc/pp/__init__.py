"""Preprocessing that writes into AnnData: expression, clinical text, slides (tiles, embeddings).

Every function takes ``adata`` first, writes new keys (``key_added``) and records its parameters
in ``adata.uns``.
"""
# Each line below imports one module's public functions.
from ._clinical import LabelLeakWarning
from ._text import clinical_to_text, embed_text
from ._slides import detect_tissue, tile_slides, embed_tiles
from ._spatial import tile_spots
