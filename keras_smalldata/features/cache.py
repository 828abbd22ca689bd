"""`FeatureCache`: extracted features on disk, keyed by a fingerprint of their inputs.

Layout of a cache folder::

    cache_dir/
      <fingerprint[:32]>/             one entry per distinct set of inputs
        manifest.json                 written last: its presence marks a complete entry
        features-<run>.npy            (samples, *feature_shape)
        labels-<run>.npy              (samples, *label_shape), if there are labels

Data files are written under temporary names (``.features-<run>.npy.<host>.
<pid>.<token>.tmp``), renamed when complete, and only then is the manifest
written (atomically: temporary file + rename). A manifest names the exact
data files of its run and their SHA-256, so an interrupted or concurrent
write can never be taken for a complete entry: at worst the entry is missed
and computed again. Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_smalldata._files import atomic_write_text
from keras_smalldata.features._npy_writer import (
    NpyAppender,
    data_sha256,
    is_orphan_temp,
)
from keras_smalldata.features.feature_set import FeatureSet

MANIFEST_NAME = "manifest.json"
_FORMAT = "keras_smalldata.features"
_FORMAT_VERSION = 1


class CorruptedCacheWarning(UserWarning):
    """A cache entry could not be read back; the features are computed again."""


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

    def load(self, fingerprint: str) -> FeatureSet | None:
        """Returns the cached feature set for ``fingerprint``, or None on a miss.

        A complete entry that cannot be read back (a damaged manifest, a
        missing, truncated or altered data file) is a miss too, with a
        `CorruptedCacheWarning`.
        """
        entry = self.entry_path(fingerprint)
        manifest_path = entry / MANIFEST_NAME
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
                raise ValueError("not a feature-cache manifest")
        except (OSError, ValueError, UnicodeDecodeError) as error:
            self._warn(manifest_path, error)
            return None
        if manifest.get("format_version") != _FORMAT_VERSION:
            return None  # written by another version: compute again, quietly
        if manifest.get("fingerprint") != fingerprint:
            return None  # a different entry that shares the folder name prefix
        try:
            features = self._open(entry, manifest["features"])
            labels = None
            if manifest.get("labels") is not None:
                labels = np.array(self._open(entry, manifest["labels"]))
            if labels is not None and len(labels) != len(features):
                raise ValueError("features and labels have different lengths")
            if len(features) != manifest["num_samples"]:
                raise ValueError("the sample count does not match the manifest")
        except (OSError, ValueError, KeyError, TypeError) as error:
            self._warn(manifest_path, error)
            return None
        return FeatureSet(
            features,
            labels,
            manifest.get("class_names"),
            cache_path=entry,
            from_cache=True,
        )

    @staticmethod
    def _open(entry: Path, record: dict) -> np.ndarray:
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

    @staticmethod
    def _warn(path: Path, error: Exception) -> None:
        warnings.warn(
            f"The feature cache entry {str(path.parent)!r} is damaged ({error}); "
            "computing the features again.",
            CorruptedCacheWarning,
            stacklevel=4,
        )

    def check_writable(self) -> None:
        """Creates the cache folder if needed and checks that files can be written in it.

        Raises:
            PermissionError: when the folder cannot be created or written to.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=".write-test-", suffix=".tmp")
            os.close(fd)
            os.remove(name)
        except OSError as error:
            raise PermissionError(
                f"cache_dir={str(self.directory)!r} is not writable ({error.strerror or error}); "
                "pass a folder you can write to, or cache_dir=None to keep the features "
                "in memory only."
            ) from error

    def writer(self, fingerprint: str, with_labels: bool) -> CacheWriter:
        """Starts writing the entry for ``fingerprint`` (see `CacheWriter`)."""
        entry = self.entry_path(fingerprint)
        entry.mkdir(parents=True, exist_ok=True)
        for path in entry.iterdir():
            if is_orphan_temp(path):
                try:
                    path.unlink()
                except OSError:
                    pass
        return CacheWriter(entry, fingerprint, with_labels)


class CacheWriter:
    """Writes one cache entry: append batches, then `commit` or `discard`."""

    def __init__(self, entry: Path, fingerprint: str, with_labels: bool):
        self.entry = entry
        self.fingerprint = fingerprint
        self.run = secrets.token_hex(6)
        self.features = NpyAppender(entry / f"features-{self.run}.npy")
        self.labels = None
        try:
            if with_labels:
                self.labels = NpyAppender(entry / f"labels-{self.run}.npy")
        except BaseException:
            self.features.discard()
            raise

    def append(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        self.features.append(features)
        if self.labels is not None:
            self.labels.append(labels)

    def commit(self, class_names, description: dict) -> FeatureSet:
        """Completes the entry: data files into place, then the manifest; returns it loaded."""
        records = {}
        for key, appender in (("features", self.features), ("labels", self.labels)):
            if appender is None:
                records[key] = None
                continue
            temp = appender.finish()
            os.replace(temp, appender.final_path)
            records[key] = {
                "file": appender.final_path.name,
                "shape": [appender.count, *appender.row_shape],
                "dtype": appender.dtype.str,
                "sha256": appender.sha256,
            }
        manifest = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "num_samples": self.features.count,
            "feature_shape": list(self.features.row_shape),
            "class_names": class_names,
            "features": records["features"],
            "labels": records["labels"],
            "inputs": description,
        }
        atomic_write_text(self.entry / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        keep = {r["file"] for r in records.values() if r is not None} | {MANIFEST_NAME}
        for path in self.entry.iterdir():
            if path.name not in keep and path.suffix == ".npy" and not path.name.startswith("."):
                try:  # an earlier run's data, no longer referenced
                    path.unlink()
                except OSError:
                    pass
        features = np.load(self.entry / records["features"]["file"], mmap_mode="r", allow_pickle=False)
        labels = None
        if records["labels"] is not None:
            labels = np.load(self.entry / records["labels"]["file"], allow_pickle=False)
        return FeatureSet(features, labels, class_names, cache_path=self.entry, from_cache=False)

    def discard(self) -> None:
        """Removes the temporary files (after an error or an interruption)."""
        for appender in (self.features, self.labels):
            if appender is not None:
                appender.discard()
