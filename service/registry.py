"""The loaded models: every verified version of every size in the store, reloaded when the store changes.

A reload builds a new immutable ``Catalog`` and swaps it in with one assignment, so a request keeps the
catalog (and sessions) it started with and never sees a half-built one. Versions are immutable in the store,
so sessions of versions whose metadata is unchanged are reused rather than reloaded. A version that fails
verification is refused; when it is the one the store serves, the previously served version keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model_store.metadata import SIZES, model_name
from model_store.store import ModelStore, StoreError
from service.errors import ApiError, ErrorCode
from service.inference import LoadedModel, load_model

log = logging.getLogger("microexp.registry")


@dataclass(frozen=True)
class Refusal:
    size: str
    name: str
    version: int | None  # None: the model as a whole (e.g. its served pointer)
    reason: str


@dataclass(frozen=True)
class Catalog:
    models: Mapping[str, Mapping[int, LoadedModel]] = field(default_factory=dict)  # size → version → model
    served: Mapping[str, int] = field(default_factory=dict)  # size → version served by default
    refused: tuple[Refusal, ...] = ()
    fingerprint: str | None = None

    def model(self, size: str, version: int | None = None) -> LoadedModel:
        versions = self.models.get(size)
        if not versions:
            loaded = ", ".join(self.served) or "none"
            raise ApiError(
                503,
                ErrorCode.MODEL_UNAVAILABLE,
                f"no {size} model is loaded; loaded sizes: {loaded}",
                {"loaded_sizes": list(self.served)},
            )
        if version is None:
            return versions[self.served[size]]
        if version not in versions:
            name = next(iter(versions.values())).metadata.name
            reasons = [r.reason for r in self.refused if r.size == size and r.version == version]
            refused = f" (version {version} was refused: {reasons[0]})" if reasons else ""
            raise ApiError(
                404,
                ErrorCode.UNKNOWN_VERSION,
                f"{name} has no version {version}; versions: {', '.join(map(str, versions))}{refused}",
                {"versions": list(versions)},
            )
        return versions[version]


class ModelRegistry:
    def __init__(self, root: Path, family: str, threads: int) -> None:
        self.root = root
        self.family = family
        self.threads = threads
        self._catalog = Catalog()
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def reload(self) -> bool:
        """Rebuild the catalog if the store changed since the last build; True when it did."""
        with self._lock:
            try:
                store: ModelStore | None = ModelStore(self.root)
            except StoreError as error:
                store = None
                reason = str(error)
            # Taken before reading, so a change during the reload is seen by the next one.
            fingerprint = store.fingerprint() if store is not None else f"absent: {reason}"
            if fingerprint == self._catalog.fingerprint:
                return False
            if store is None:
                log.error("no models loaded: %s", reason)
                self._catalog = Catalog(fingerprint=fingerprint)
            else:
                self._catalog = self._build(store, fingerprint)
            return True

    def _build(self, store: ModelStore, fingerprint: str) -> Catalog:
        previous = self._catalog
        models: dict[str, dict[int, LoadedModel]] = {}
        served: dict[str, int] = {}
        refused: list[Refusal] = []
        names = set(store.models())
        for size in SIZES:
            name = model_name(self.family, size)
            if name not in names:
                continue
            try:
                versions = store.versions(name)
            except StoreError as error:
                refused.append(Refusal(size, name, None, str(error)))
                continue
            loaded: dict[int, LoadedModel] = {}
            for version in versions:
                try:
                    loaded[version] = self._load(store, size, name, version, previous)
                except StoreError as error:
                    log.error("refused %s version %d: %s", name, version, error)
                    refused.append(Refusal(size, name, version, str(error)))
            if loaded:
                models[size] = loaded
                served[size] = self._served(store, size, name, loaded, previous, refused)
        log.info(
            "models loaded",
            extra={"fields": {"served": served, "versions": {s: sorted(v) for s, v in models.items()}}},
        )
        return Catalog(models, served, tuple(refused), fingerprint)

    def _load(self, store: ModelStore, size: str, name: str, version: int, previous: Catalog) -> LoadedModel:
        metadata = store.metadata(name, version)
        kept = previous.models.get(size, {}).get(version)
        if kept is not None and kept.metadata == metadata:
            return kept
        resolved = store.resolve(size, version, self.family)  # verifies the file's sha256
        try:
            return load_model(resolved, self.threads)
        except Exception as error:  # onnxruntime raises its own exception types for files it cannot run
            raise StoreError(f"{resolved.onnx_path}: onnxruntime cannot run it: {error}") from None

    def _served(
        self,
        store: ModelStore,
        size: str,
        name: str,
        loaded: Mapping[int, LoadedModel],
        previous: Catalog,
        refused: list[Refusal],
    ) -> int:
        try:
            wanted: int | None = store.served_version(name)
        except StoreError as error:
            wanted = None
            refused.append(Refusal(size, name, None, str(error)))
        if wanted is not None and wanted in loaded:
            return wanted
        kept = previous.served.get(size)
        fallback = kept if kept in loaded else max(loaded)
        log.warning("%s: served version %s is not loadable; serving version %d", name, wanted, fallback)
        return fallback
