"""A persistent cache of compiled programs, so a sweep compiled once loads in a fraction of the
time in the next process (JAX's persistent compilation cache, in a per-user folder).

What can reach a program is in its key: JAX hashes the lowered program (the objective, the
optimizer, every structural option, shapes and dtypes), the compile options, the device
assignment and the jax, jaxlib and XLA versions; gdkit adds its own version by keeping one
folder per version. An entry is therefore only reused for a program that is the same bit for
bit, and a loaded program computes the same numbers as a freshly compiled one.

`gdkit run` uses it unless `--no-cache` or `GDKIT_NO_CACHE=1`; in Python call
`gdkit.enable_compilation_cache()` first thing. `gdkit cache clear` (or `rm -rf` of the folder
`gdkit cache dir` prints) empties it.

The same folder keeps small facts that take long to find and are a function of a traced
program (`stored` / `store`, keyed by the program's text), e.g. which optimizer-state leaves
a sweep's lanes can share.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from typing import Any

NO_CACHE_ENV = "GDKIT_NO_CACHE"


def cache_root() -> pathlib.Path:
    """The per-user cache folder: `$XDG_CACHE_HOME/gdkit`, else `~/.cache/gdkit`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "gdkit"


def cache_dir(root: str | os.PathLike | None = None) -> pathlib.Path:
    """Where this gdkit version keeps its compiled programs: `<root>/xla-<version>`."""
    from gdkit import __version__

    return pathlib.Path(cache_root() if root is None else root) / f"xla-{__version__}"


def disabled_by_env() -> bool:
    """True when `GDKIT_NO_CACHE` is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def enable_compilation_cache(root: str | os.PathLike | None = None) -> pathlib.Path:
    """Keeps every program gdkit (and JAX) compiles from now on in a persistent cache, and
    loads it from there when the same program is compiled again, in this or a later process.

    Small programs are cached too (JAX by default keeps only those that took a second to
    compile). Call it before the first sweep; calling it again with another folder moves the
    cache there. The numbers a cached program computes are the same bits as a fresh compile's.

    Args:
      root: the cache's folder (default: `$XDG_CACHE_HOME/gdkit`, else `~/.cache/gdkit`); the
        programs go in a subfolder per gdkit version.

    Returns:
      The folder the programs go in.

    Example:
      >>> import gdkit
      >>> gdkit.enable_compilation_cache()  # doctest: +SKIP
      PosixPath('/home/me/.cache/gdkit/xla-0.1.0')
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = cache_dir(root)
    path.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(path):
        cc.reset_cache()  # JAX opens its cache once; a new folder needs a fresh start
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def enabled() -> bool:
    """Whether the persistent cache is on in this process."""
    import jax

    return bool(jax.config.jax_compilation_cache_dir)


def stored(kind: str, key: str) -> Any:
    """The JSON value `store(kind, key, value)` kept, or None: the cache is off, nothing is
    kept under `key`, or the entry cannot be read."""
    path = _entry(kind, key)
    try:
        return None if path is None else json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def store(kind: str, key: str, value: Any) -> None:
    """Keeps `value` (JSON) under `key` in the cache folder, atomically; nothing when the
    cache is off or the folder is not writable (the value is then found again next time)."""
    path = _entry(kind, key)
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(value))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _entry(kind: str, key: str) -> pathlib.Path | None:
    """`<cache folder>/<kind>/<sha256 of key>.json`, None while the cache is off."""
    import jax

    folder = jax.config.jax_compilation_cache_dir
    if not folder:
        return None
    digest = hashlib.sha256(f"{jax.__version__}\n{key}".encode()).hexdigest()
    return pathlib.Path(folder) / kind / f"{digest}.json"


def disable_compilation_cache() -> None:
    """Stops reading and writing the persistent cache (in this process)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    jax.config.update("jax_compilation_cache_dir", None)
    cc.reset_cache()


def clear_compilation_cache(root: str | os.PathLike | None = None) -> int:
    """Deletes every cached program of every gdkit version under `root` (default: the
    per-user folder); returns the bytes freed."""
    folder = pathlib.Path(cache_root() if root is None else root)
    freed = 0
    for sub in folder.glob("xla-*"):
        freed += sum(f.stat().st_size for f in sub.rglob("*") if f.is_file())
        shutil.rmtree(sub, ignore_errors=True)
    return freed
