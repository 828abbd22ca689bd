"""`FeatureCache`: extracted features on disk, keyed by a fingerprint of their inputs.

Layout of a cache folder::

    cache_dir/
      <fingerprint[:32]>/             one entry per distinct set of inputs
        manifest.json                 written last: its presence marks a complete entry
        features-<run>.npy            (samples, *feature_shape)
        labels-<run>.npy              (samples, *label_shape), if there are labels
        check-<run>.npy               the model's first batch of inputs, under a
                                      cache_key of yours (see `CacheWriter`)

Data files are written under temporary names (``.features-<run>.npy.<host>.
<pid>.<token>.tmp``), renamed when complete, and only then is the manifest
written (atomically: temporary file + rename). A manifest names the exact
data files of its run and their SHA-256, so an interrupted write can never be
taken for a complete entry: at worst the entry is missed and computed again.
Files are read with ``allow_pickle=False``.

Several processes may fill the same cache at once. Each writes its own files
(the run token is in their names) and only the last step, installing the
data files and the manifest, happens under an exclusive lock on the entry
folder (``flock``); readers take a shared lock while they read a manifest and
open its files. The first complete entry wins: a writer that finds one
already installed for the same inputs discards its own files and returns
that entry (unless it replaces that very entry, found stale). Data files
that no manifest names any more are removed only under the exclusive lock,
so no writer ever removes another's files. Where ``flock`` is not available (Windows), the
manifest is still replaced atomically and old data files are left in place.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from keras_smalldata._files import atomic_write_text
from keras_smalldata.features._npy_writer import (
    NpyAppender,
    data_sha256,
    is_orphan_temp,
)
from keras_smalldata.features.feature_set import FeatureSet
from keras_smalldata.features.fingerprint import FORMAT_VERSION

try:
    import fcntl as _fcntl

    fcntl: ModuleType | None = _fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

MANIFEST_NAME = "manifest.json"
_FORMAT = "keras_smalldata.features"


class CorruptedCacheWarning(UserWarning):
    """A cache entry could not be read back; the features are computed again."""


class StaleCacheWarning(UserWarning):
    """A cache entry made under your ``cache_key`` does not match the model any more.

    On a hit under ``cache_key=`` for a model with code of yours, the model
    runs again on the first batch stored with the entry; other outputs mean
    the code changed (or is random) while the key stayed the same. The
    features are computed again and replace the entry.
    """


class CacheNotUsedWarning(UserWarning):
    """The cache key cannot vouch for this call's result: computed without the cache.

    The message names the reason (code of yours, random draws without a
    seed, a dataset that gives other pictures on each pass) and how to
    cache anyway: ``seed=``, or ``cache_key=`` of your own.
    """


class _EntryLock:
    """An advisory lock on an entry folder: shared for readers, exclusive for writers.

    ``held`` says whether the lock was taken; without ``flock`` (Windows) or
    on a file system that refuses it, the code goes on unlocked.
    """

    def __init__(self, folder: Path, exclusive: bool):
        self.folder = folder
        self.exclusive = exclusive
        self.held = False
        self._fd: int | None = None

    def __enter__(self):
        if fcntl is None:
            return self
        try:
            self._fd = os.open(self.folder, os.O_RDONLY)
            fcntl.flock(self._fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
            self.held = True
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
        self.held = False
        return False


class FeatureCache:
    """A folder of feature-cache entries.

    Args:
        directory: The cache folder. It is created when the first entry is
            written; reading never writes.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(
                f"cache_dir={str(directory)!r} is a file, not a folder; pass a folder "
                "(it is created if missing)."
            )

    def entry_path(self, fingerprint: str) -> Path:
        return self.directory / fingerprint[:32]

    def load(self, fingerprint: str) -> tuple[FeatureSet, dict] | None:
        """Returns the cached feature set for ``fingerprint`` and its manifest, or None.

        A complete entry that cannot be read back (a damaged manifest, a
        missing, truncated or altered data file) is a miss too, with a
        `CorruptedCacheWarning`.
        """
        entry = self.entry_path(fingerprint)
        if not (entry / MANIFEST_NAME).is_file():
            return None
        with _EntryLock(entry, exclusive=False):
            return _read_entry(entry, fingerprint, warn=True)

    def check_writable(self) -> None:
        """Creates the cache folder if needed and checks that files can be written in it.

        Raises:
            PermissionError: when the folder cannot be created or written to.
            OSError: for another failure (a full disk), naming the folder.
        """
        try:
            with _named_errors(self.directory):
                self.directory.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=self.directory, prefix=".write-test-", suffix=".tmp")
                os.close(fd)
                os.remove(name)
        except (PermissionError, NotADirectoryError, FileExistsError) as error:
            raise PermissionError(
                f"cache_dir={str(self.directory)!r} is not writable ({error.strerror or error}); "
                "pass a folder you can write to, or cache_dir=None to keep the features "
                "in memory only."
            ) from error

    def writer(self, fingerprint: str, with_labels: bool, with_check: bool = False) -> CacheWriter:
        """Starts writing the entry for ``fingerprint`` (see `CacheWriter`)."""
        entry = self.entry_path(fingerprint)
        with _named_errors(self.directory):
            entry.mkdir(parents=True, exist_ok=True)
            for path in entry.iterdir():
                if is_orphan_temp(path):
                    try:
                        path.unlink()
                    except OSError:
                        pass
            return CacheWriter(entry, fingerprint, with_labels, with_check, self.directory)


@contextlib.contextmanager
def _named_errors(directory: Path):
    """Re-raises an OSError of writing the cache (a full disk) with the folder and what to do.

    Errors that mean "not writable" stay as they are (`check_writable`
    words them); a read-only file system becomes a PermissionError.
    """
    try:
        yield
    except (PermissionError, NotADirectoryError, FileExistsError):
        raise
    except OSError as error:
        if error.errno == errno.EROFS:
            raise PermissionError(error.errno, error.strerror, error.filename) from error
        raise OSError(
            error.errno,
            f"Could not write the feature cache in {str(directory)!r}: "
            f"{error.strerror or error}. Free some space or pass cache_dir= a folder "
            "with room, or cache_dir=None to keep the features in memory only.",
        ) from error


def _read_entry(entry: Path, fingerprint: str, warn: bool) -> tuple[FeatureSet, dict] | None:
    """Reads and checks a complete entry; None (with a warning if ``warn``) when it is not whole."""
    manifest_path = entry / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise ValueError("not a feature-cache manifest")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        if warn:
            _warn_damaged(manifest_path, error)
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        return None  # written by another version: compute again, quietly
    if manifest.get("fingerprint") != fingerprint:
        return None  # a different entry that shares the folder name prefix
    try:
        features = _open_checked(entry, manifest["features"])
        labels = None
        if manifest.get("labels") is not None:
            labels = np.array(_open_checked(entry, manifest["labels"]))
        if labels is not None and len(labels) != len(features):
            raise ValueError("features and labels have different lengths")
        if len(features) != manifest["num_samples"]:
            raise ValueError("the sample count does not match the manifest")
        check = None
        if manifest.get("check") is not None:
            check = np.array(_open_checked(entry, manifest["check"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        if warn:
            _warn_damaged(manifest_path, error)
        return None
    feature_set = FeatureSet(
        features, labels, manifest.get("class_names"), cache_path=entry, from_cache=True
    )
    manifest["check_inputs"] = check
    return feature_set, manifest


def _open_checked(entry: Path, record: dict) -> np.ndarray:
    name = record["file"]
    if not isinstance(name, str) or Path(name).name != name:
        raise ValueError(f"bad file name {name!r}")
    path = entry / name
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if list(array.shape) != list(record["shape"]) or array.dtype.str != record["dtype"]:
        raise ValueError(
            f"{name} holds {array.shape} {array.dtype.str}, the manifest says "
            f"{tuple(record['shape'])} {record['dtype']}"
        )
    digest, offset = data_sha256(path)
    if offset + array.nbytes != path.stat().st_size:
        raise ValueError(f"{name} has {path.stat().st_size - offset - array.nbytes} extra bytes")
    if digest != record["sha256"]:
        raise ValueError(f"{name} does not match its checksum")
    return array


def _warn_damaged(path: Path, error: Exception) -> None:
    warnings.warn(
        f"The feature cache entry {str(path.parent)!r} is damaged ({error}); "
        "computing the features again.",
        CorruptedCacheWarning,
        stacklevel=5,
    )


class CacheWriter:
    """Writes one cache entry: append batches, then `commit` or `discard`.

    With ``with_check``, the model's inputs of the first batch are kept in
    the entry too (the rows of that batch are the first rows): a hit under
    a ``cache_key`` of the user's runs the model on them again to check it.
    An OSError while writing names the cache folder (a full disk...).
    """

    def __init__(self, entry: Path, fingerprint: str, with_labels: bool, with_check: bool, directory: Path):
        self.entry = entry
        self.fingerprint = fingerprint
        self.directory = directory
        self.run = secrets.token_hex(6)
        self.appenders = {"features": NpyAppender(entry / f"features-{self.run}.npy")}
        try:
            if with_labels:
                self.appenders["labels"] = NpyAppender(entry / f"labels-{self.run}.npy")
            if with_check:
                self.appenders["check"] = NpyAppender(entry / f"check-{self.run}.npy")
        except BaseException:
            self.discard()
            raise

    def append(self, features: np.ndarray, labels: np.ndarray | None, inputs=None) -> None:
        with _named_errors(self.directory):
            self.appenders["features"].append(features)
            if "labels" in self.appenders:
                assert labels is not None  # callers with labels pass them for every batch
                self.appenders["labels"].append(labels)
            check = self.appenders.get("check")
            if check is not None and check.count == 0 and inputs is not None:
                check.append(inputs)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows written so far, read into memory; the files are discarded."""
        with _named_errors(self.directory):
            loaded = {}
            for key in ("features", "labels"):
                if key in self.appenders:
                    loaded[key] = np.load(self.appenders[key].finish(), allow_pickle=False)
        self.discard()
        try:
            self.entry.rmdir()  # if no other run uses the entry folder
        except OSError:
            pass
        return loaded["features"], loaded.get("labels")

    def commit(self, class_names, description: dict, replaces: str | None = None) -> FeatureSet:
        """Completes the entry and returns it, loaded; or returns the entry another writer completed first.

        ``replaces`` names the features file of an entry found stale: an
        installed entry with that file is replaced, not returned.
        """
        with _named_errors(self.directory):
            return self._commit(class_names, description, replaces)

    def _commit(self, class_names, description, replaces) -> FeatureSet:
        temps = {}
        for key, appender in self.appenders.items():
            if appender.count:
                temps[key] = appender.finish()  # flushed to disk, outside the lock
            else:
                appender.discard()
        with _EntryLock(self.entry, exclusive=True) as lock:
            existing = _read_entry(self.entry, self.fingerprint, warn=False)
            if existing is not None and existing[1]["features"]["file"] != replaces:
                self.discard()
                found = existing[0]
                return FeatureSet(
                    found.features, found.labels, found.class_names,
                    cache_path=self.entry, from_cache=False,
                )
            records: dict[str, dict[str, Any] | None] = {
                "features": None, "labels": None, "check": None
            }
            for key, temp in temps.items():
                appender = self.appenders[key]
                os.replace(temp, appender.final_path)
                # finish() succeeded, so the appender's first rows set these
                assert appender.row_shape is not None and appender.dtype is not None
                records[key] = {
                    "file": appender.final_path.name,
                    "shape": [appender.count, *appender.row_shape],
                    "dtype": appender.dtype.str,
                    "sha256": appender.sha256,
                }
            features = self.appenders["features"]
            feature_record = records["features"]
            if features.row_shape is None or feature_record is None:
                raise ValueError("No feature rows were written.")
            manifest = {
                "format": _FORMAT,
                "format_version": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "num_samples": features.count,
                "feature_shape": list(features.row_shape),
                "class_names": class_names,
                **records,
                "inputs": description,
            }
            atomic_write_text(self.entry / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
            if lock.held:
                self._remove_unreferenced({r["file"] for r in records.values() if r is not None})
            features = np.load(
                self.entry / feature_record["file"], mmap_mode="r", allow_pickle=False
            )
            labels = None
            label_record = records["labels"]
            if label_record is not None:
                labels = np.load(self.entry / label_record["file"], allow_pickle=False)
        return FeatureSet(features, labels, class_names, cache_path=self.entry, from_cache=False)

    def _remove_unreferenced(self, keep: set[str]) -> None:
        """Removes the data files of earlier runs (called under the exclusive lock).

        Other writers' files still have their temporary names, which start
        with a dot, and are left alone.
        """
        for path in self.entry.iterdir():
            if path.suffix == ".npy" and not path.name.startswith(".") and path.name not in keep:
                try:
                    path.unlink()
                except OSError:
                    pass

    def discard(self) -> None:
        """Removes the temporary files (after an error or an interruption)."""
        for appender in self.appenders.values():
            appender.discard()
