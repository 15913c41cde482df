"""Tile reading for :func:`~gemmgan_sc.pp.embed_tiles`: worker processes fill shared-memory batches in place.

A ring of a few uint8 batches (``depth`` x ``batch_size`` x H x W x 3) lives in shared memory. Worker
processes read chunks of :data:`WORKER_CHUNK` tiles and write them straight into their rows of a batch; the
main process encodes a batch as soon as all of its chunks are in, while the workers fill the next ones. No
tile is copied between processes or re-collated, and the same pages are reused for the whole run (a
DataLoader makes a fresh shared-memory segment per chunk, which both sides then page in, plus a collating
copy in the worker and a re-batching copy in the main process).

With ``num_workers=0`` the same code reads in this process, one batch at a time.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

WORKER_CHUNK = 8  # tiles a worker reads per task: small enough to keep every worker busy on a few hundred tiles
RING_DEPTH = 3  # batches in flight: one being encoded, the next ones being read

_worker: dict[str, Any] = {}  # per worker process: the dataset and the ring


class TileDataset:
    """The tiles of several slides in one index; slides are opened lazily and kept open (at most 5)."""

    def __init__(self, jobs: list[dict[str, Any]], out_size: int, encoder=None) -> None:
        self.index = [(j, t) for j, job in enumerate(jobs) for t in range(len(job["coords"]))]
        self.jobs = jobs
        self.out_size = int(out_size)
        self.encoder = encoder  # a CPU (non-torch) encoder run inside the workers
        self._readers: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:  # open slide handles stay in their process
        return dict(self.__dict__, _readers={})

    def read(self, i: int) -> np.ndarray:
        """Tile ``i`` as ``out_size`` x ``out_size`` x 3 uint8."""
        from PIL import Image

        from ._tiles import open_slide

        j, t = self.index[i]
        job = self.jobs[j]
        path = job["path"]
        if path not in self._readers:
            if len(self._readers) > 4:
                self._readers.pop(next(iter(self._readers))).close()
            self._readers[path] = open_slide(path)
        x, y = job["coords"][t]
        rs = job["read_size"]
        tile = self._readers[path].read_region((int(x), int(y)), job["level"], (rs, rs))
        if rs != self.out_size:
            tile = np.asarray(Image.fromarray(tile).resize((self.out_size, self.out_size), Image.Resampling.BILINEAR))
        return tile

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        """Tiles ``start:stop`` into the rows of ``out``."""
        for row, i in enumerate(range(start, stop)):
            out[row] = self.read(i)

    def features(self, start: int, stop: int) -> np.ndarray:
        """Features of tiles ``start:stop`` by the CPU encoder (float32, one row per tile)."""
        import torch

        tiles = np.empty((stop - start, self.out_size, self.out_size, 3), np.uint8)
        self.read_into(tiles, start, stop)
        x = self.encoder.preprocess(torch.from_numpy(tiles).permute(0, 3, 1, 2))
        return self.encoder(x).float().numpy()


def keep_freed_memory() -> bool:
    """Make glibc reuse freed tile-sized blocks instead of mapping fresh pages (in a worker process only).

    Every tile passes through a few 200-260 kB buffers (decoded RGBA, RGB, array). Above 128 kB glibc
    serves each from a fresh ``mmap`` and unmaps it on free, so every tile pays page faults on all its
    buffers; raising the mmap and trim thresholds lets them be reused from the heap (measured on the
    2-core VM: 2.3 -> 1.6 ms per JPEG tile, 6.6 -> 5.0 ms per JPEG 2000 tile). Not applied to the user's
    process, whose allocation pattern is not ours to change. Returns False where it does not apply
    (not glibc).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 128 * 2**20))


def _init_worker(dataset: TileDataset, ring) -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the cores with each other and with the encoder
    keep_freed_memory()
    _worker["dataset"], _worker["ring"] = dataset, ring


def _fill(slot: int, row: int, start: int, stop: int) -> None:
    rows = _worker["ring"][slot, row : row + stop - start].numpy()  # a view of the shared batch
    _worker["dataset"].read_into(rows, start, stop)


def _features(start: int, stop: int) -> np.ndarray:
    return _worker["dataset"].features(start, stop)


class _InProcess:
    """The executor interface, run at submission in this process (``num_workers=0``)."""

    def __init__(self, dataset: TileDataset, ring) -> None:
        self.dataset, self.ring = dataset, ring

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            if fn is _fill:
                slot, row, start, stop = args
                self.dataset.read_into(self.ring[slot, row : row + stop - start].numpy(), start, stop)
                fut.set_result(None)
            else:
                fut.set_result(self.dataset.features(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(err)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _executor(dataset: TileDataset, ring, num_workers: int):
    if num_workers == 0:
        return _InProcess(dataset, ring)
    # the platform default start method, as torch's DataLoader uses (fork on Linux: nothing is pickled)
    return ProcessPoolExecutor(num_workers, mp_context=mp.get_context(), initializer=_init_worker,
                               initargs=(dataset, ring))


def tile_batches(dataset: TileDataset, batch_size: int, num_workers: int) -> Iterator[tuple[np.ndarray, Any]]:
    """Yield ``(indices, tiles)`` per batch, in dataset order: ``tiles`` is a B x H x W x 3 uint8 tensor.

    ``tiles`` is a view of a shared batch that is refilled once the next batch is asked for: use it (or
    copy it) before advancing the iterator.
    """
    import torch

    n = len(dataset)
    n_batches = -(-n // batch_size)
    depth = 1 if num_workers == 0 else max(1, min(RING_DEPTH, n_batches))
    size = dataset.out_size
    ring = torch.empty((depth, batch_size, size, size, 3), dtype=torch.uint8)
    if num_workers:
        ring.share_memory_()
    step = batch_size if num_workers == 0 else min(batch_size, WORKER_CHUNK)
    pending: dict[int, list[Future]] = {}

    def submit(b: int) -> None:
        start, stop = b * batch_size, min(n, (b + 1) * batch_size)
        pending[b] = [ex.submit(_fill, b % depth, s - start, s, min(stop, s + step)) for s in range(start, stop, step)]

    ex = _executor(dataset, ring, num_workers)
    try:
        for b in range(min(depth, n_batches)):
            submit(b)
        for b in range(n_batches):
            for fut in pending.pop(b):
                fut.result()  # a worker's error (e.g. a tile that cannot be decoded) is raised here
            start, stop = b * batch_size, min(n, (b + 1) * batch_size)
            yield np.arange(start, stop), ring[b % depth, : stop - start]
            if b + depth < n_batches:
                submit(b + depth)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def feature_chunks(dataset: TileDataset, num_workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(indices, features)`` per chunk, in dataset order, computed by ``dataset.encoder`` in the workers."""
    n = len(dataset)
    starts = list(range(0, n, WORKER_CHUNK))
    window = 4 * max(1, num_workers)  # chunks in flight
    ex = _executor(dataset, None, num_workers)
    pending: dict[int, Future] = {}
    try:
        for k, start in enumerate(starts):
            for ahead in range(k, min(len(starts), k + window)):
                if ahead not in pending:
                    pending[ahead] = ex.submit(_features, starts[ahead], min(n, starts[ahead] + WORKER_CHUNK))
            yield np.arange(start, min(n, start + WORKER_CHUNK)), pending.pop(k).result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
