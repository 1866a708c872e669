"""Checkpoints of a running sweep: where it is, and every lane's state, in one atomic file."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
import warnings
from collections.abc import Callable

import numpy as np

from gdkit import _checks

# Bumped when what a snapshot means changes, so that an older file is not resumed from. 2:
# snapshots are taken after a segment of steps that is not its lane chunk's last. 3: a lane's
# steps_to_tol is the step from which it stayed within tol (was: the first step within tol),
# and the header holds a checksum of the arrays.
FORMAT = 3


class Checkpoint:
    """A file a sweep saves its progress to (`sweep(checkpoint=...)`) and resumes from.

    The sweep saves after a chunk of steps once `every` seconds have passed since the last
    save (so a fast sweep does not spend its time writing), atomically (temporary file +
    rename), and only a file made by the same sweep (same fingerprint) is ever resumed from.
    A damaged file (truncated, or its checksum does not match) is reported through `report`
    (default: a RuntimeWarning), deleted, and the sweep starts from its first step.
    `resumed_run_time`: the seconds of running the snapshot a sweep resumed from recorded
    (0.0 until then), which that sweep's `run_time` includes.

    Example:
      >>> import tempfile, pathlib
      >>> from gdkit import Checkpoint, sweep
      >>> ck = Checkpoint(pathlib.Path(tempfile.mkdtemp()) / "ck.npz", every=0.0)
      >>> r = sweep("rosenbrock", "adam", grid={"learning_rate": [0.01, 0.1]}, steps=300,
      ...           chunk_steps=100, checkpoint=ck, progress=False)
      >>> ck.path.exists()  # the sweep is done: its checkpoint is gone
      False
    """

    def __init__(
        self,
        path: str | os.PathLike,
        every: float = 5.0,
        write: bool = True,
        report: Callable[[str], None] | None = None,
    ):
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"Checkpoint: path must be a path, got {_checks.short(path)}")
        self.path = pathlib.Path(path)
        self.every = _checks.real("Checkpoint", "every", every, 0.0, finite=False)
        # False in the processes of a distributed run that do not write
        self.write = _checks.boolean("Checkpoint", "write", write)
        self.report = report
        self._last = time.monotonic()
        self.resumed_run_time = 0.0

    def due(self) -> bool:
        return self.write and time.monotonic() - self._last >= self.every

    def save(self, fingerprint: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        header = json.dumps({"fingerprint": fingerprint, "sha256": _digest(arrays), **meta})
        try:
            with open(tmp, "wb") as f:
                np.savez(f, __meta__=np.array(header), **arrays)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)  # a failed save (a full disk) leaves nothing behind
        self._last = time.monotonic()

    def load(self, fingerprint: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(meta, arrays) saved by the same sweep, or None (no file, another sweep's, or a
        damaged one, which is reported and deleted)."""
        self.resumed_run_time = 0.0
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("__meta__")))
            if not isinstance(meta, dict):
                raise ValueError("no header")
        except Exception as e:
            return self._discard(f"unreadable: {type(e).__name__}")
        if meta.pop("fingerprint", None) != fingerprint:
            return None
        if meta.pop("sha256", None) != _digest(arrays):
            return self._discard("checksum mismatch")
        # 0: a snapshot from before the run time was recorded
        self.resumed_run_time = float(meta.pop("run_time", 0.0))
        return meta, arrays

    def _discard(self, why: str) -> None:
        message = f"checkpoint {self.path} is damaged ({why}); discarded, the sweep starts over"
        if self.report is None:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        else:
            self.report(message)
        if self.write:
            self.path.unlink(missing_ok=True)

    def clear(self) -> None:
        if self.write:
            self.path.unlink(missing_ok=True)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the arrays: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def as_checkpoint(checkpoint) -> Checkpoint | None:
    """`sweep`'s `checkpoint` argument: None, a Checkpoint, or a path (a Checkpoint there),
    refused before the sweep runs when it is anything else or names a folder."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint, str | os.PathLike):
        checkpoint = Checkpoint(checkpoint)
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(
            f"sweep: checkpoint must be a gdkit.Checkpoint, a path or None, "
            f"got {_checks.short(checkpoint)}"
        )
    if checkpoint.path.is_dir():
        raise ValueError(f"sweep: checkpoint {str(checkpoint.path)!r} is a folder, not a file")
    return checkpoint


def fingerprint(*parts) -> str:
    """A stable hash of everything that decides a sweep's numbers (arrays by their bytes)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, dict):
            for k in sorted(p):
                h.update(str(k).encode())
                h.update(fingerprint(p[k]).encode())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()


def merge(out: dict, n: int, lanes: np.ndarray, res: dict) -> None:
    """Writes per-lane results `res` ([k, ...] for the first k of `lanes`) into `out` (taking
    them over, without a copy, when they are all n lanes in order)."""
    whole = len(lanes) == n and np.array_equal(lanes, np.arange(n))
    for k, v in res.items():
        if k not in out and whole and len(v) == n:
            out[k] = v
            continue
        if k not in out:
            out[k] = np.empty((n, *v.shape[1:]), v.dtype)
        out[k][lanes[: len(v)]] = v


def snapshot(checkpoint, key, out, n, combo, lanes, lo, seg, state, run_time=0.0) -> None:
    """Saves where the sweep is (combo, lane chunk, segment), everything done so far and the
    seconds spent running so far (`run_time`, which a resumed sweep adds to its own), when
    the checkpoint is due (`_runner.run_lanes` calls it after each segment of steps)."""
    if not checkpoint.due():
        return
    st = state()
    done = {k: v.copy() for k, v in out.items()}
    merge(done, n, lanes, st["outs"])
    arrays = {f"out_{k}": v for k, v in done.items()}
    arrays |= {f"carry_{i}": a for i, a in enumerate(st["carry"])}
    arrays |= {f"hist_{i}": a for i, a in enumerate(st["hist"])}
    meta = {
        "combo": combo,
        "lo": int(lo),
        "seg": int(seg),
        "n_carry": len(st["carry"]),
        "n_hist": len(st["hist"]),
        "run_time": float(run_time),
    }
    checkpoint.save(key, meta, arrays)
