"""A small client for the NCI Genomic Data Commons (GDC) API: paged queries and verified downloads.

Every query response is cached as JSON under ``<data_dir>/_gdc/`` so that a later call can
run offline from files already present. Downloads go through pooch with the md5 that GDC reports.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._settings import logger
from ._cache import atomic_write_json, read_json

GDC_API = "https://api.gdc.cancer.gov"
_PAGE = 500


class GDCError(RuntimeError):
    """The GDC API could not answer (unreachable, bad response) and no cached answer exists."""


class GDCUnreachable(GDCError):
    """The GDC API did not answer at all (network down, wrong address)."""


class GDCClient:
    """Query the GDC ``files``/``cases`` endpoints and download from ``data``.

    Parameters
    ----------
    base_url
        Root of the API (default ``https://api.gdc.cancer.gov``).
    data_dir
        Folder for cached query answers (``_gdc/``) and downloaded files.
    timeout
        Seconds to wait for the server.
    """

    def __init__(self, base_url: str, data_dir: Path, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.data_dir = Path(data_dir)
        self.timeout = timeout
        self.used_cache = False

    def _unreachable(self, err: Exception) -> GDCUnreachable:
        return GDCUnreachable(
            f"Could not reach the GDC API at {self.base_url} ({type(err).__name__}: {err}). Check the network "
            f"connection, or work offline: pass data_dir=<folder> of an earlier call with the same project_ids "
            f"and options (it holds the cached query answers in '_gdc/' and the downloaded files); this call "
            f"used data_dir={str(self.data_dir)!r}."
        )

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        import requests

        url = f"{self.base_url}/{endpoint}"
        try:
            resp = requests.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as err:
            raise self._unreachable(err) from err
        if resp.status_code != 200:
            raise GDCError(f"GDC API {url} answered HTTP {resp.status_code}: {resp.text[:300]!r}")
        try:
            out = resp.json()
            out["data"]["hits"]  # noqa: B018 - shape check
        except (ValueError, KeyError, TypeError) as err:
            raise GDCError(f"GDC API {url} returned an unexpected answer (not GDC JSON): {resp.text[:300]!r}") from err
        return out

    def query(self, endpoint: str, filters: dict, fields: list[str], expand: list[str] | None = None) -> list[dict]:
        """All hits of a ``files`` or ``cases`` query (every page); cached, and read from cache when offline."""
        body: dict[str, Any] = {"filters": filters, "fields": ",".join(fields), "format": "json", "size": _PAGE}
        if expand:
            body["expand"] = ",".join(expand)
        key = hashlib.sha1(json.dumps([endpoint, body], sort_keys=True).encode()).hexdigest()[:16]
        cache = self.data_dir / "_gdc" / f"{endpoint}-{key}.json"
        hits: list[dict] = []
        start = 0
        try:
            while True:
                page = self._post(endpoint, {**body, "from": start})
                data = page["data"]
                hits.extend(data["hits"])
                total = int(data.get("pagination", {}).get("total", len(hits)))
                start += len(data["hits"])
                if not data["hits"] or start >= total:
                    break
        except GDCUnreachable:
            cached = read_json(cache)
            if cached is None:
                raise
            logger.warning("GDC API unreachable; using the cached answer %s", cache)
            self.used_cache = True
            return cached["hits"]
        atomic_write_json(cache, {"endpoint": endpoint, "body": body, "hits": hits})
        return hits

    def download(self, file_id: str, file_name: str, md5: str | None, folder: Path, progressbar: bool) -> Path:
        """Download ``/data/<file_id>`` to ``folder/file_name``; skipped when a file with that md5 exists."""
        import pooch
        import requests

        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file_name
        known = f"md5:{md5}" if md5 else None
        if md5 and target.is_file() and pooch.file_hash(str(target), alg="md5") == md5:
            return target  # resumable: nothing to fetch
        url = f"{self.base_url}/data/{file_id}"
        try:
            path = pooch.retrieve(
                url, known_hash=known, fname=file_name, path=folder,
                downloader=pooch.HTTPDownloader(progressbar=progressbar, timeout=self.timeout),
            )
        except requests.HTTPError as err:
            raise GDCError(f"GDC refused the download of file {file_id} ({file_name}) from {url}: {err}") from err
        except requests.RequestException as err:
            raise self._unreachable(err) from err
        except ValueError as err:
            if "hash" in str(err).lower():
                raise GDCError(
                    f"md5 mismatch for GDC file {file_id} ({file_name}): GDC reports md5 {md5} but the downloaded "
                    f"file differs, so it was not kept. The transfer was probably corrupted; run the call again."
                ) from err
            raise
        return Path(path)
