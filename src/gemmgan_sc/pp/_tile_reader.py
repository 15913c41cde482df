"""Tile reading for :func:`~gemmgan_sc.pp.embed_tiles`: a torch ``Dataset`` over the tiles of several slides
and the ``DataLoader`` that reads them in worker processes while the main process encodes.

For a CPU encoder that is not a torch module (``"hed-texture"``) the workers also compute the features: the
loader's ``collate_fn`` runs in the worker, so reading and encoding both run in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ._tiles import open_slide

#: Start method of the worker processes; None is the platform default (as for any torch DataLoader).
START_METHOD: str | None = None
_OPEN_SLIDES = 5  # slide files a dataset keeps open at once (per process)


class TileDataset(Dataset):
    """Tile ``i`` of the slides in ``jobs``, in order, as an ``out_size`` x ``out_size`` x 3 uint8 array.

    ``jobs``: one dict per slide with ``path``, ``level``, ``read_size`` (px read at ``level``) and
    ``coords`` (level-0 top-left corners). A tile read at another size is resized bilinearly. Each process
    opens the slides it reads (lazily, at most five at once).
    """

    def __init__(self, jobs: list[dict[str, Any]], out_size: int) -> None:
        self.jobs = jobs
        self.out_size = int(out_size)
        self.starts = np.cumsum([0] + [len(job["coords"]) for job in jobs])
        self._readers: dict[str, Any] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict[str, Any]:  # open slide handles stay in the process that opened them
        return dict(self.__dict__, _readers={})

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read(int(i))

    def read(self, i: int) -> np.ndarray:
        """Tile ``i`` (H x W x 3 uint8)."""
        j = int(np.searchsorted(self.starts, i, side="right")) - 1
        job = self.jobs[j]
        x, y = job["coords"][i - self.starts[j]]
        rs = int(job["read_size"])
        tile = self._reader(job["path"]).read_region((int(x), int(y)), int(job["level"]), (rs, rs))
        if rs != self.out_size:
            tile = np.asarray(Image.fromarray(tile).resize((self.out_size, self.out_size), Image.Resampling.BILINEAR))
        return tile

    def _reader(self, path: str):
        if path not in self._readers:
            if len(self._readers) >= _OPEN_SLIDES:
                self._readers.pop(next(iter(self._readers))).close()
            self._readers[path] = open_slide(path)
        return self._readers[path]

    def close(self) -> None:
        """Close the slides this process opened."""
        while self._readers:
            self._readers.popitem()[1].close()


def stack_tiles(tiles: list[np.ndarray]) -> torch.Tensor:
    """``collate_fn``: the tiles as one B x H x W x 3 uint8 tensor.

    numpy copies in one thread: ``torch.stack`` spreads the first touch of the fresh batch over its intra-op
    threads, which then wait on each other and on the encoder's threads.
    """
    return torch.from_numpy(np.stack(tiles))


class EncodeInWorker:
    """``collate_fn`` that stacks the tiles of a batch and runs a CPU encoder on them (in the worker)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder

    def __call__(self, tiles: list[np.ndarray]) -> torch.Tensor:
        batch = stack_tiles(tiles).permute(0, 3, 1, 2)
        return self.encoder(self.encoder.preprocess(batch)).float()


def tile_loader(dataset: TileDataset, batch_size: int, num_workers: int, *, encoder=None,
                pin_memory: bool = False) -> DataLoader:
    """Batches of ``dataset`` in order: B x H x W x 3 uint8 tiles, or B x D features when ``encoder`` is given
    (it then runs in the workers)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=stack_tiles if encoder is None else EncodeInWorker(encoder),
        pin_memory=pin_memory,
        multiprocessing_context=START_METHOD if num_workers else None,
    )


def next_batch(batches) -> Any:
    """The next item of a DataLoader iterator, or None at the end.

    A worker's error is raised again here (torch names the worker and keeps the original traceback in the
    message). Its traceback runs through the iterator's frames, which hold the iterator and so its worker
    processes; their locals are cleared so that the workers stop as soon as the caller drops the iterator,
    not when the traceback (kept by a notebook, a test) goes.
    """
    try:
        return next(batches)
    except StopIteration:
        return None
    except BaseException as err:
        import traceback

        traceback.clear_frames(err.__traceback__.tb_next)  # the frames below this one
        del batches  # and this frame's own reference
        raise
