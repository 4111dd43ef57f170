"""The loaded models: every verified version of every model (family x size) in the store, reloaded when the store
changes.

A reload builds a new immutable ``Catalog`` and swaps it in with one assignment, so a request keeps the
catalog (and sessions) it started with and never sees a half-built one. Versions are immutable in the store,
so sessions of versions whose metadata is unchanged are reused rather than reloaded. A version that fails
verification is refused; when it is the one the store serves, the previously served version keeps serving (after a
restart: the one the store's pointer served before, as a rollback would).

Requests that name a size but no family get the size's *default* model: the configured family, or (unset) the
family whose served version has the best validation accuracy in its metadata, so publishing a more accurate family
at a size makes it the default there, and ``?family=`` still reaches every other family.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model_store.store import ModelStore, SizeDefault, StoreError, default_model
from model_store.vocabulary import SIZES, model_name, split_model_name
from service.errors import ApiError, ErrorCode
from service.inference import LoadedModel, load_model

log = logging.getLogger("microexp.registry")


@dataclass(frozen=True)
class Refusal:
    name: str
    version: int | None  # None: the model as a whole (e.g. its served pointer)
    reason: str


@dataclass(frozen=True)
class Catalog:
    models: Mapping[str, Mapping[int, LoadedModel]] = field(default_factory=dict)  # name → version → model
    served: Mapping[str, int] = field(default_factory=dict)  # name → version served by default
    defaults: Mapping[str, str] = field(default_factory=dict)  # size → name answering requests naming no family
    decisions: Mapping[str, SizeDefault] = field(default_factory=dict)  # size → the store's choice and its reasons
    refused: tuple[Refusal, ...] = ()
    fingerprint: str | None = None

    @property
    def families(self) -> list[str]:
        return sorted({split_model_name(name)[0] for name in self.models})

    def model(self, size: str, version: int | None = None, family: str | None = None) -> LoadedModel:
        """The model of ``size`` (of ``family``, else the size's default), at ``version``, else the served one."""
        if family is None:
            name = self.defaults.get(size)
            if name is None:
                raise ApiError(
                    503,
                    ErrorCode.MODEL_UNAVAILABLE,
                    f"no {size} model is loaded; loaded models: {', '.join(self.models) or 'none'}",
                    {"loaded_models": list(self.models)},
                )
            return self.version(name, version)
        return self.named(model_name(family, size), version)

    def named(self, name: str, version: int | None = None) -> LoadedModel:
        """The model called ``name`` at ``version``, else its served one; 404 when the store has no such model,
        503 when it has one that failed verification."""
        if name not in self.models:
            refusals = [refusal.reason for refusal in self.refused if refusal.name == name]
            if refusals:
                raise ApiError(503, ErrorCode.MODEL_UNAVAILABLE, f"model {name} has no loadable version: {refusals[0]}")
            raise ApiError(
                404,
                ErrorCode.UNKNOWN_MODEL,
                f"unknown model {name!r}; models: {', '.join(self.models) or 'none'}",
                {"models": list(self.models), "families": self.families},
            )
        return self.version(name, version)

    def version(self, name: str, version: int | None) -> LoadedModel:
        versions = self.models[name]
        if version is None:
            return versions[self.served[name]]
        if version not in versions:
            reasons = [r.reason for r in self.refused if r.name == name and r.version == version]
            refused = f" (version {version} was refused: {reasons[0]})" if reasons else ""
            raise ApiError(
                404,
                ErrorCode.UNKNOWN_VERSION,
                f"{name} has no version {version}; versions: {', '.join(map(str, versions))}{refused}",
                {"versions": list(versions)},
            )
        return versions[version]


class ModelRegistry:
    def __init__(self, root: Path, family: str | None, threads: int) -> None:
        self.root = root
        self.family = family  # None: per size, the most accurate family on validation
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
        for name in store.models():
            try:
                versions = store.versions(name)
            except StoreError as error:
                refused.append(Refusal(name, None, str(error)))
                continue
            loaded: dict[int, LoadedModel] = {}
            for version in versions:
                try:
                    loaded[version] = self._load(store, name, version, previous)
                except StoreError as error:
                    log.error("refused %s version %d: %s", name, version, error)
                    refused.append(Refusal(name, version, str(error)))
            if loaded:
                models[name] = loaded
                served[name] = self._served(store, name, loaded, previous, refused)
        try:
            chosen = store.defaults().sizes
        except StoreError as error:
            log.error("ignored the store's defaults: %s", error)
            refused.append(Refusal("defaults", None, str(error)))
            chosen = {}
        defaults = self._defaults({name: models[name][version] for name, version in served.items()}, chosen)
        log.info(
            "models loaded",
            extra={
                "fields": {
                    "defaults": defaults,
                    "served": served,
                    "versions": {n: sorted(v) for n, v in models.items()},
                }
            },
        )
        return Catalog(models, served, defaults, chosen, tuple(refused), fingerprint)

    def _defaults(self, served: Mapping[str, LoadedModel], chosen: Mapping[str, SizeDefault]) -> dict[str, str]:
        """size → the model name that answers requests naming no family."""
        metadata = {name: model.metadata for name, model in served.items()}
        defaults = {size: default_model(metadata, size, self.family, chosen) for size in SIZES}
        return {size: name for size, name in defaults.items() if name is not None}

    def _load(self, store: ModelStore, name: str, version: int, previous: Catalog) -> LoadedModel:
        metadata = store.metadata(name, version)
        kept = previous.models.get(name, {}).get(version)
        if kept is not None and kept.metadata == metadata:
            return kept
        family, size = split_model_name(name)
        resolved = store.resolve(size, version, family)  # verifies the file's sha256
        try:
            return load_model(resolved, self.threads)
        except Exception as error:  # onnxruntime raises its own exception types for files it cannot run
            raise StoreError(f"{resolved.onnx_path}: onnxruntime cannot run it: {error}") from None

    def _served(
        self,
        store: ModelStore,
        name: str,
        loaded: Mapping[int, LoadedModel],
        previous: Catalog,
        refused: list[Refusal],
    ) -> int:
        try:
            wanted: int | None = store.served_version(name)
        except StoreError as error:
            wanted = None
            refused.append(Refusal(name, None, str(error)))
        if wanted is not None and wanted in loaded:
            return wanted
        # The last good version: the one this worker served until now, else (after a restart) the most recent one
        # the pointer served before, so a restart does not switch to an untried version; else the highest.
        candidates = [previous.served.get(name), *reversed(store.served_before(name)), max(loaded)]
        fallback = next(version for version in candidates if version in loaded)
        log.warning("%s: served version %s is not loadable; serving version %d", name, wanted, fallback)
        return fallback
