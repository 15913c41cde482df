"""Device-resident conditioning data: expression, text tokens, the patch bank and labels of a cohort.

Everything a training step needs sits in buffers of one module, so Lightning moves it to the device once
and a batch is a gather: the random draw of ``n_patches`` tiles per slide is one ``rand``/``topk`` over a
B x (max tiles) matrix and one index into the contiguous float16 bank, with no per-sample Python loop
and no host-device copy.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn


class ConditionBank(nn.Module):
    """Per-row tensors of a cohort, on one device.

    Parameters
    ----------
    x
        n x genes float32 (z-scored) expression, or None (sampling from new conditions).
    text, text_mask
        n x M x D token embeddings (kept in float16) and n x M bool mask (True = token).
    patches, offsets, counts
        The contiguous (T x D_p) float16 bank and, per row, the first bank row and number of tiles of its slide.
    labels
        n x K int64 category codes.
    n_patches
        Tiles drawn per slide and step (``N``); slides with fewer tiles are padded and masked.
    stream_from
        A :class:`gemmgan_sc.data.PatchStore` and the slide id of each row, ``(store, slide_ids)``, instead of
        ``patches``/``offsets``/``counts``: for banks that do not fit in memory. Each step then reads only the drawn
        tiles from zarr (host reads and one copy to the device per step: slower, but bounded memory). The draw is the
        same as in memory, so both modes give the same tiles for the same random state.
    read_threads
        Threads reading the rows of a streamed batch in parallel (default: twice the CPU count, at most 16; zarr's
        decompression and the file reads release the GIL). 1 reads one row after another.
    """

    def __init__(
        self,
        x: np.ndarray | None = None,
        text: np.ndarray | None = None,
        text_mask: np.ndarray | None = None,
        patches: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
        counts: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        n_patches: int = 256,
        stream_from: tuple | None = None,
        read_threads: int | None = None,
    ) -> None:
        super().__init__()
        if read_threads is None:
            read_threads = min(16, 2 * (os.cpu_count() or 1))
        if isinstance(read_threads, bool) or not isinstance(read_threads, (int, np.integer)) or read_threads < 1:
            raise ValueError(f"read_threads must be a positive int or None, got {read_threads!r}.")
        self.read_threads = int(read_threads)
        self._arrays: dict = {}  # zarr arrays opened by streamed reads, kept open across steps
        self._stream = None
        if stream_from is not None:
            store, slide_ids = stream_from
            slide_ids = [str(s) for s in slide_ids]
            counts = np.array([store.n_tiles(s) if store.has_features(s) else 0 for s in slide_ids], dtype=np.int64)
            offsets = np.zeros_like(counts)
            self._stream = (store, slide_ids)
        self.n_patches = int(n_patches)
        self.n_obs = None
        for name, value, dtype in (
            ("x", x, torch.float32),
            ("text", text, torch.float16),
            ("text_mask", text_mask, torch.bool),
            ("patches", patches, torch.float16),
            ("offsets", offsets, torch.long),
            ("counts", counts, torch.long),
            ("labels", labels, torch.long),
        ):
            tensor = None if value is None else torch.as_tensor(np.asarray(value)).to(dtype)
            self.register_buffer(name, tensor, persistent=False)
            if tensor is not None and name != "patches":
                if self.n_obs is None:
                    self.n_obs = int(tensor.shape[0])
                elif int(tensor.shape[0]) != self.n_obs:
                    raise ValueError(f"ConditionBank: {name} has {tensor.shape[0]} rows, expected {self.n_obs}.")
        if self.text is not None and self.text_mask is None:
            self.text_mask = torch.ones(self.text.shape[:2], dtype=torch.bool)
        if self.patches is not None or self._stream is not None:
            if self.offsets is None or self.counts is None:
                raise ValueError("ConditionBank: patches need offsets and counts per row.")
            self.max_tiles = int(self.counts.max())
            # every slide has >= N tiles: no draw is ever padded, so the fusion can skip its masks (known once, on
            # the host: no device sync per step)
            self.patches_always_full = int(self.counts.min()) >= self.n_patches
        else:
            self.max_tiles = 0
            self.patches_always_full = False
        self.text_always_full = self.text is not None and bool(self.text_mask.all())

    def draw_patches(
        self, idx: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n_patches`` distinct random tiles of each row's slide (all of them, padded, when fewer).

        Returns B x N x D_p float16 embeddings and a B x N bool mask (True = real tile).
        """
        counts = self.counts[idx]
        offsets = self.offsets[idx]
        width = self.max_tiles
        n = min(self.n_patches, width)
        keys = torch.rand(idx.shape[0], width, device=counts.device, generator=generator)
        position = torch.arange(width, device=counts.device)
        keys = keys.masked_fill(position.unsqueeze(0) >= counts.unsqueeze(1), 2.0)
        picked = keys.topk(n, dim=1, largest=False, sorted=False).indices
        mask = picked < counts.unsqueeze(1)
        if self._stream is not None:
            feats = self._read_streamed(idx, picked, mask)
        else:
            # padded picks read row 0 (masked anyway): a 0-tile slide's offset may equal the bank size
            rows = torch.where(mask, offsets.unsqueeze(1) + picked, torch.zeros_like(picked))
            feats = self.patches[rows].masked_fill(~mask.unsqueeze(-1), 0.0)  # padding reads as zeros
        if n < self.n_patches:  # every slide has fewer tiles than N: pad to N
            pad = self.n_patches - n
            feats = torch.cat([feats, feats.new_zeros(feats.shape[0], pad, feats.shape[2])], dim=1)
            mask = torch.cat([mask, mask.new_zeros(mask.shape[0], pad)], dim=1)
        return feats, mask

    def _read_streamed(self, idx: torch.Tensor, picked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Read the drawn tiles of each row from zarr (padding stays zero)."""
        store, slide_ids = self._stream
        picked_np, mask_np = picked.cpu().numpy(), mask.cpu().numpy()
        out = np.zeros(picked_np.shape + (store.dim,), dtype=np.float16)
        rows_of = idx.cpu().tolist()

        def read(r: int) -> None:
            rows = picked_np[r][mask_np[r]]
            if len(rows) == 0:
                return
            sid = slide_ids[rows_of[r]]
            array = self._arrays.get(sid)
            if array is None:
                array = self._arrays[sid] = store.features_array(sid)
            order = np.argsort(rows)
            out[r, np.flatnonzero(mask_np[r])[order]] = array.get_orthogonal_selection((rows[order], slice(None)))

        if self.read_threads > 1 and len(rows_of) > 1:
            with ThreadPoolExecutor(min(self.read_threads, len(rows_of))) as pool:
                list(pool.map(read, range(len(rows_of))))  # list(): re-raise a worker's error here
        else:
            for r in range(len(rows_of)):
                read(r)
        return torch.from_numpy(out).to(picked.device)

    @property
    def streaming(self) -> bool:
        """Whether tiles are read from zarr at each step (bank too large for memory)."""
        return self._stream is not None

    def conditions(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Condition inputs of rows ``idx`` (a fresh tile draw each call)."""
        out: dict[str, torch.Tensor] = {}
        if self.patches is not None or self._stream is not None:
            out["patches"], mask = self.draw_patches(idx, generator)
            out["patch_mask"] = None if self.patches_always_full else mask
        if self.text is not None:
            out["text"] = self.text[idx]
            out["text_mask"] = None if self.text_always_full else self.text_mask[idx]
        if self.labels is not None:
            out["labels"] = self.labels[idx]
        return out
