"""The versioned model store: a Triton model repository of ONNX models with metadata and a served pointer.

Layout (see docs/model_store.md)::

    <root>/<family>_<size>/config.pbtxt        Triton config, follows the served version
    <root>/<family>_<size>/served              {"version": N, "history": [...]}; absent: the highest serves
    <root>/<family>_<size>/<N>/model.onnx      immutable version folders
    <root>/<family>_<size>/<N>/metadata.json
    <root>/face_detection_yunet_2023mar.onnx   the service's default face detector (sha256 known to the code)
    <root>/defaults.json                       which model answers each size by default, and why (optional)

Readers never lock: a version appears by one atomic rename of a fully written folder, and the pointer and
config by ``os.replace``. Writers of one model serialise on an ``fcntl`` lock on ``<model>/.lock``.
Every name or version that reaches a path is first looked up in the store's own listing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_store import triton
from model_store.faces import YUNET_FILE_NAME, yunet_model_problem
from model_store.metadata import ModelDraft, ModelMetadata, validation_summary
from model_store.vocabulary import (
    DEFAULT_FAMILY,
    MODEL_NAME_PATTERN,
    Size,
    model_name,
    parse_size,
    split_model_name,
)

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.pbtxt"
POINTER_FILE = "served"
# A plain file at the root (Triton and the listing pass over files): the model each size answers with by default.
DEFAULTS_FILE = "defaults.json"
# Hidden names: Triton and the listing skip them. The lock file also remembers the last version number
# handed out, so a removed version's number is never reused for a different model.
_LOCK_FILE = ".lock"
_STAGING_PREFIX = ".staging-"
_HISTORY_LIMIT = 20

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def yunet_file(root: Path) -> Path:
    """Where a store keeps the YuNet face detector: a plain file at its root, beside MODEL_CARD.md, because Triton
    takes every folder of a model repository for a model and the listing refuses folders without versions, while both
    pass over files."""
    return Path(root) / YUNET_FILE_NAME


class StoreError(Exception):
    """Anything the store refuses or cannot do; the message is meant for the user."""


class NotAStoreError(StoreError):
    pass


class UnknownModelError(StoreError):
    pass


class UnknownVersionError(StoreError):
    pass


class InvalidModelError(StoreError):
    """A model offered for publishing does not load or does not match its draft."""


class ServedVersionError(StoreError):
    """The version is the one served by default and cannot be removed."""


class IntegrityError(StoreError):
    """A stored file is missing, unreadable or not what its metadata says."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: int
    onnx_path: Path
    metadata: ModelMetadata


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Pointer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    history: list[int] = []


class SizeDefault(BaseModel):
    """The model answering one size by default, and the measurements that chose it (docs/results.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=MODEL_NAME_PATTERN.pattern)
    why: str = Field(min_length=1)


class StoreDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sizes: dict[Size, SizeDefault] = {}


def default_model(
    served: Mapping[str, ModelMetadata],
    size: str,
    family: str | None = None,
    chosen: Mapping[str, SizeDefault] | None = None,
) -> str | None:
    """Of the models whose served versions are ``served`` (name → metadata), the one that answers requests naming
    ``size`` and no family: ``family``'s when given, else the store's decision for the size (``chosen``, from
    ``defaults.json``) while that model is served, else the one with the best validation accuracy. That last rule
    is only a fallback for stores without decisions: it compares figures measured on whatever validation set each
    model had. Ties (and models without a validation figure) go to MicroExpNet, then to the name."""
    candidates = [name for name in served if split_model_name(name)[1] == size]
    if family is not None:
        candidates = [name for name in candidates if split_model_name(name)[0] == family]
    elif chosen is not None and size in chosen and chosen[size].model in candidates:
        return chosen[size].model
    return max(candidates, default=None, key=lambda name: (
        served[name].metrics.val_accuracy or 0.0,
        split_model_name(name)[0] == DEFAULT_FAMILY,
        name,
    ))  # fmt: skip


class ModelStore:
    def __init__(self, root: Path | str, *, create: bool = False) -> None:
        self.root = Path(root)
        if create and not self.root.exists():
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            reason = "is not a directory" if self.root.exists() else "does not exist"
            raise NotAStoreError(f"{self.root}: not a model store ({reason})")
        # Empty folders pass: a first publish creates its model folder before the version appears in it.
        for folder in _visible_dirs(self.root):
            if _visible(folder) and not _version_numbers(folder) and not (folder / CONFIG_FILE).exists():
                raise NotAStoreError(f"{self.root}: not a model store ({folder.name}/ is not a model folder)")

    # Reading ------------------------------------------------------------------------------------------

    def models(self) -> list[str]:
        return sorted(
            folder.name
            for folder in _visible_dirs(self.root)
            if MODEL_NAME_PATTERN.match(folder.name) and _version_numbers(folder)
        )

    def versions(self, name: str) -> list[int]:
        return _version_numbers(self._model_dir(name))

    def served_version(self, name: str) -> int:
        """The pointer's version, else the highest."""
        versions = self.versions(name)
        pointer = self._pointer(name)
        if pointer is None:
            return versions[-1]
        if pointer.version not in versions:
            raise IntegrityError(
                self.root / name / POINTER_FILE,
                f"names version {pointer.version}, which does not exist; promote an existing version",
            )
        return pointer.version

    def served_before(self, name: str) -> list[int]:
        """The versions served before the pointer's, the most recent last (what rollback goes back to)."""
        try:
            pointer = self._pointer(name)
        except IntegrityError:
            return []
        return [] if pointer is None else list(pointer.history)

    def default_name(self, size: str) -> str:
        """The model that answers requests naming ``size`` and no family (``default_model``)."""
        size = parse_size(size)
        served = {
            name: self.metadata(name, self.served_version(name))
            for name in self.models()
            if split_model_name(name)[1] == size
        }
        name = default_model(served, size, chosen=self.defaults().sizes)
        if name is None:
            raise UnknownModelError(f"no {size} model in {self.root}; models: {', '.join(self.models()) or 'none'}")
        return name

    def defaults(self) -> StoreDefaults:
        """The store's decisions of which model answers each size (``defaults.json``); none when it has no file."""
        path = self.root / DEFAULTS_FILE
        try:
            return StoreDefaults.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return StoreDefaults()
        except OSError as error:
            raise IntegrityError(path, f"unreadable ({error.strerror})") from None
        except ValidationError as error:
            raise IntegrityError(path, f"invalid defaults: {validation_summary(error)}") from None

    def metadata(self, name: str, version: int) -> ModelMetadata:
        path = self._version_dir(name, version) / METADATA_FILE
        try:
            metadata = ModelMetadata.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise IntegrityError(path, "missing") from None
        except OSError as error:
            raise IntegrityError(path, f"unreadable ({error.strerror})") from None
        except ValidationError as error:
            raise IntegrityError(path, f"invalid metadata: {validation_summary(error)}") from None
        if (metadata.name, metadata.version) != (name, version):
            raise IntegrityError(path, f"describes {metadata.name} version {metadata.version}")
        return metadata

    def resolve(self, size: str, version: int | None = None, family: str = DEFAULT_FAMILY) -> ResolvedModel:
        """The model file to serve for a size tier (and a version, else the served one), integrity checked."""
        try:
            name = model_name(family, size)
        except ValueError as error:
            raise UnknownModelError(str(error)) from None
        return self._verified(name, self.served_version(name) if version is None else version)

    def verify(self) -> list[Problem]:
        """Every problem in the store: pointers, configs, metadata and model files of every version, and the face
        detector's file, which the service needs as much as the classifiers."""
        detector = yunet_file(self.root)
        detector_problem = yunet_model_problem(detector)
        problems = [] if detector_problem is None else [Problem(detector, detector_problem)]
        for name in self.models():
            served: ModelMetadata | None = None
            try:
                served_version = self.served_version(name)
            except IntegrityError as error:
                problems.append(Problem(error.path, error.reason))
                served_version = None
            for version in self.versions(name):
                try:
                    metadata = self.metadata(name, version)
                except IntegrityError as error:
                    problems.append(Problem(error.path, error.reason))
                    continue
                model_path = self._version_dir(name, version) / MODEL_FILE
                reason = _file_problem(model_path, metadata)
                if reason:
                    problems.append(Problem(model_path, reason))
                if version == served_version:
                    served = metadata
            if served is not None:
                problems.extend(self._config_problems(name, served))
        return problems + self._defaults_problems()

    def _defaults_problems(self) -> list[Problem]:
        path = self.root / DEFAULTS_FILE
        try:
            chosen = self.defaults().sizes
        except IntegrityError as error:
            return [Problem(error.path, error.reason)]
        models = self.models()
        return [
            Problem(path, f"{size}: {default.model} is not a model in the store")
            if default.model not in models
            else Problem(path, f"{size}: {default.model} is not a {size} model")
            for size, default in chosen.items()
            if default.model not in models or split_model_name(default.model)[1] != size
        ]

    def fingerprint(self) -> str:
        """Changes whenever a model, version, pointer, config, model file or the defaults change; only stats, no
        reads."""
        digest = hashlib.sha256(_stat_line(self.root / DEFAULTS_FILE))
        for folder in _visible_dirs(self.root):
            for entry in sorted(_visible(folder), key=lambda entry: entry.name):
                path = Path(entry.path)
                digest.update(_stat_line(path))
                if entry.is_dir(follow_symlinks=False):
                    for name in (MODEL_FILE, METADATA_FILE):
                        digest.update(_stat_line(path / name))
        return digest.hexdigest()

    # Writing ------------------------------------------------------------------------------------------

    def set_default(self, size: str, name: str, why: str) -> None:
        """Make ``name`` (a model of ``size`` in the store) answer requests naming ``size`` and no family."""
        size = parse_size(size)
        if name not in self.models():
            raise UnknownModelError(f"no model {name!r} in {self.root}; models: {', '.join(self.models())}")
        if split_model_name(name)[1] != size:
            raise UnknownModelError(f"{name} is not a {size} model")
        with _locked(self.root):
            current = self.defaults()
            chosen = StoreDefaults(sizes={**current.sizes, size: SizeDefault(model=name, why=why)})
            _replace_text(self.root / DEFAULTS_FILE, chosen.model_dump_json(indent=2) + "\n")

    def publish(self, onnx_path: Path, draft: ModelDraft) -> int:
        """Store a new immutable version and return its number; the file is first checked against the draft."""
        onnx_path = Path(onnx_path)
        _check_onnx(onnx_path, draft)
        model_dir = self.root / model_name(draft.family, draft.size)
        model_dir.mkdir(exist_ok=True)
        staging = model_dir / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _copy_synced(onnx_path, staging / MODEL_FILE)
            sha256, file_bytes = _digest(staging / MODEL_FILE)
            with _locked(model_dir) as lock:
                version = max([*_version_numbers(model_dir), _last_issued(lock)]) + 1
                metadata = ModelMetadata.from_draft(
                    draft, version=version, sha256=sha256, file_bytes=file_bytes, created_at=datetime.now(UTC)
                )
                _write_synced(staging / METADATA_FILE, metadata.to_json())
                os.rename(staging, model_dir / str(version))
                _record_issued(lock, version)
                self._write_config(model_dir.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def promote(self, name: str, version: int) -> None:
        """Serve `version` by default; the previously served version is remembered for rollback."""
        with _locked(self._model_dir(name)):
            self._verified(name, version)
            try:
                pointer = self._pointer(name)
                current: int | None = self.served_version(name)
            except IntegrityError:  # a broken pointer is what promote repairs
                pointer, current = None, None
            if pointer is None and current == version:
                # Without a pointer the highest version serves, so publishing `version` already served it: what
                # served before, and what a rollback (or a restart after a refusal) goes back to, is the next lower.
                current = max((v for v in self.versions(name) if v != version), default=None)
            history = pointer.history if pointer else []
            if current is not None and current != version:
                history = [*history, current][-_HISTORY_LIMIT:]
            self._write_pointer(name, _Pointer(version=version, history=history))

    def rollback(self, name: str) -> int:
        """Serve the previously promoted version (else the next lower one); returns the version now served."""
        with _locked(self._model_dir(name)):
            current = self.served_version(name)
            versions = self.versions(name)
            pointer = self._pointer(name)
            history = list(pointer.history) if pointer else []
            target = None
            while history and target is None:
                candidate = history.pop()
                if candidate in versions and candidate != current:
                    target = candidate
            if target is None:
                lower = [version for version in versions if version < current]
                if not lower:
                    raise StoreError(f"{name}: nothing to roll back to, version {current} is the oldest")
                target = lower[-1]
            self._verified(name, target)
            self._write_pointer(name, _Pointer(version=target, history=history))
            return target

    def remove(self, name: str, version: int) -> None:
        """Delete a version that is not the served one."""
        model_dir = self._model_dir(name)
        with _locked(model_dir):
            version_dir = self._version_dir(name, version)
            if version == self.served_version(name):
                raise ServedVersionError(
                    f"{name} version {version} is the served version; promote another version first"
                )
            # Renamed away first so that readers see the version vanish at once, never half deleted.
            doomed = model_dir / f"{_STAGING_PREFIX}removed-{version}-{uuid.uuid4().hex}"
            os.rename(version_dir, doomed)
            shutil.rmtree(doomed)

    # Internals ----------------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        models = self.models()
        if name not in models:
            known = ", ".join(models) or "none"
            raise UnknownModelError(f"unknown model {name!r} in {self.root}; models: {known}")
        return self.root / name

    def _version_dir(self, name: str, version: int) -> Path:
        versions = self.versions(name)
        # type() rather than isinstance: True == 1 and 1.0 == 1 must not name version 1.
        if type(version) is not int or version not in versions:
            known = ", ".join(str(v) for v in versions)
            raise UnknownVersionError(f"{name} has no version {version!r}; versions: {known}")
        return self.root / name / str(version)

    def _verified(self, name: str, version: int) -> ResolvedModel:
        onnx_path = self._version_dir(name, version) / MODEL_FILE
        metadata = self.metadata(name, version)
        reason = _file_problem(onnx_path, metadata)
        if reason:
            raise IntegrityError(onnx_path, reason)
        return ResolvedModel(name=name, version=version, onnx_path=onnx_path, metadata=metadata)

    def _pointer(self, name: str) -> _Pointer | None:
        path = self._model_dir(name) / POINTER_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise IntegrityError(path, f"unreadable ({error.strerror})") from None
        try:
            # A bare number is accepted too, for a pointer written by hand.
            if text.strip().isdigit():
                return _Pointer(version=int(text))
            return _Pointer.model_validate_json(text)
        except ValidationError as error:
            raise IntegrityError(path, f"invalid pointer: {validation_summary(error)}") from None

    def _write_pointer(self, name: str, pointer: _Pointer) -> None:
        _replace_text(self.root / name / POINTER_FILE, pointer.model_dump_json() + "\n")
        self._write_config(name)

    def _write_config(self, name: str) -> None:
        served = self.served_version(name)
        config = triton.config_for(self.metadata(name, served), served)
        _replace_text(self.root / name / CONFIG_FILE, triton.render(config))

    def _config_problems(self, name: str, served: ModelMetadata) -> list[Problem]:
        path = self.root / name / CONFIG_FILE
        try:
            config = triton.parse(path.read_text())
        except FileNotFoundError:
            return [Problem(path, "missing")]
        except (OSError, triton.TritonConfigError) as error:
            return [Problem(path, f"unreadable: {error}")]
        if config != triton.config_for(served, served.version):
            return [Problem(path, f"does not match version {served.version}, the served version")]
        return []


def _visible(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return [entry for entry in entries if not entry.name.startswith(".")]


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(Path(entry.path) for entry in _visible(folder) if entry.is_dir(follow_symlinks=False))


def _version_numbers(model_dir: Path) -> list[int]:
    # Only canonical spellings ("7", not "07"), so each version has exactly one folder name.
    return sorted(
        int(folder.name)
        for folder in _visible_dirs(model_dir)
        if folder.name.isdecimal()
        and folder.name.isascii()
        and str(int(folder.name)) == folder.name
        and int(folder.name) > 0
    )


def _stat_line(path: Path) -> bytes:
    try:
        stat = path.stat(follow_symlinks=False)
    except FileNotFoundError:
        return f"{path}:-\n".encode()
    return f"{path}:{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}\n".encode()


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _file_problem(path: Path, metadata: ModelMetadata) -> str | None:
    try:
        sha256, file_bytes = _digest(path)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if file_bytes != metadata.file_bytes:
        return f"is {file_bytes} bytes, metadata.json says {metadata.file_bytes} (corrupted or replaced)"
    if sha256 != metadata.sha256:
        return f"sha256 {sha256} does not match metadata.json's {metadata.sha256} (corrupted or replaced)"
    return None


def _check_onnx(path: Path, draft: ModelDraft) -> None:
    """Load the model with onnxruntime and check its signature and output against the draft."""
    if not path.is_file():
        raise InvalidModelError(f"{path}: no such file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for files it cannot load
        raise InvalidModelError(f"{path}: onnxruntime cannot load it: {first_line(error)}") from None
    for kind, actual, expected in (
        ("input", session.get_inputs(), draft.input),
        ("output", session.get_outputs(), draft.output),
    ):
        if len(actual) != 1:
            raise InvalidModelError(f"{path}: has {len(actual)} {kind}s, expected one")
        shape = [dim if isinstance(dim, int) else -1 for dim in actual[0].shape]
        dtype = _ORT_DTYPES.get(actual[0].type)
        if (actual[0].name, shape, dtype) != (expected.name, expected.shape, expected.dtype):
            raise InvalidModelError(
                f"{path}: {kind} {actual[0].name!r} {actual[0].type} {actual[0].shape} "
                f"does not match the draft's {expected.name!r} {expected.dtype} {expected.shape}"
            )
    batch = 2 if draft.input.shape[0] == -1 else draft.input.shape[0]
    sample = np.random.default_rng(0).random((batch, *draft.input.shape[1:])).astype(draft.input.dtype)
    try:
        (logits,) = session.run(None, {draft.input.name: sample})
    except Exception as error:  # as above: onnxruntime's own exception types
        raise InvalidModelError(f"{path}: fails on a random input: {first_line(error)}") from None
    wanted = (batch, len(draft.labels))
    if logits.shape != wanted:
        raise InvalidModelError(f"{path}: output for a batch of {batch} is {logits.shape}, expected {wanted}")
    if not np.all(np.isfinite(logits)):
        raise InvalidModelError(f"{path}: output is not finite for a random input")


def first_line(error: Exception) -> str:
    """An exception's message cut to one line, for errors reported in one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _copy_synced(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with target.open("rb") as file:
        os.fsync(file.fileno())


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _replace_text(path: Path, text: str) -> None:
    """Write a file so that readers see either the old or the new content, never a mix."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write_synced(temporary, text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _locked(model_dir: Path) -> Iterator[IO[str]]:
    with (model_dir / _LOCK_FILE).open("a+", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _last_issued(lock: IO[str]) -> int:
    lock.seek(0)
    text = lock.read().strip()
    return int(text) if text.isdecimal() else 0


def _record_issued(lock: IO[str], version: int) -> None:
    lock.seek(0)
    lock.truncate()
    lock.write(f"{version}\n")
    lock.flush()
