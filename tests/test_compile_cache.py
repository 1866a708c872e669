"""The persistent compilation cache never serves a stale program, and a program loaded from it
computes the same bits as a fresh compile (one worker process; the cache is process-wide)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

WORKER = textwrap.dedent(
    """
    import json, pathlib, sys
    import jax, numpy as np
    from jax._src import monitoring
    import gdkit
    from gdkit import _cache
    from gdkit.engine import runner

    root = pathlib.Path(sys.argv[1])
    jax.config.update("jax_enable_x64", True)
    hits = []
    monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("/cache_hits") else None
    )
    LR = {"learning_rate": np.geomspace(1e-3, 1e-1, 4)}
    F32 = {"dtype": "float32"}
    VARIANTS = {  # each differs from "base" in one thing that shapes the program, or not
        "base": dict(objective="rosenbrock", optimizer="adam", grid=LR, **F32),
        "objective": dict(objective=gdkit.objectives.get("rosenbrock", dim=3),
                          optimizer="adam", grid=LR, **F32),
        "option": dict(objective="rosenbrock", optimizer="adam",
                       grid={**LR, "schedule": "cosine_decay", "decay_steps": 30}, **F32),
        "dtype": dict(objective="rosenbrock", optimizer="adam", grid=LR, dtype="float64"),
        "values": dict(objective="rosenbrock", optimizer="adam",  # arguments, not the program
                       grid={"learning_rate": np.geomspace(1e-2, 1.0, 4)}, **F32),
    }

    def sweep(name):
        jax.clear_caches()
        runner._CACHE.clear()  # gdkit's in-memory programs: the next one compiles or loads
        before = len(hits)
        r = gdkit.sweep(**VARIANTS[name], steps=40, tol=1e-6, progress=False)
        bits = [np.asarray(a).tobytes().hex() for a in (r.final_loss, r.final_x, r.history)]
        return bits, len(hits) - before

    def entries(folder):
        return sorted(p.name for p in pathlib.Path(folder).rglob("*") if p.is_file())

    out = {"fresh": {}, "first": {}, "again": {}, "new_entries": {}}
    for name in VARIANTS:  # no cache: the reference bits
        out["fresh"][name] = sweep(name)[0]
    folder = _cache.enable_compilation_cache(root)
    for name in VARIANTS:  # cache on; base first, then each change against a filled cache
        seen = entries(folder)
        out["first"][name] = sweep(name)
        out["new_entries"][name] = len(set(entries(folder)) - set(seen))
    for name in VARIANTS:
        seen = entries(folder)
        out["again"][name] = sweep(name)
        out["new_entries"][name + " again"] = len(set(entries(folder)) - set(seen))
    gdkit.__version__ = "0.0.0+other"  # another gdkit version: another folder, nothing shared
    out["other_version_folder"] = str(_cache.enable_compilation_cache(root))
    out["other_version"] = sweep("base")
    out["folder"] = str(folder)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(root)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_cached_programs_compute_the_same_bits(report):
    for name, fresh in report["fresh"].items():
        assert report["first"][name][0] == fresh, name
        assert report["again"][name][0] == fresh, name


@pytest.mark.slow
def test_a_changed_program_is_compiled_never_served_stale(report):
    # Each change that shapes the program (objective, structural option, dtype) writes new
    # entries: its programs were compiled, not loaded from base's.
    for name in ("objective", "option", "dtype"):
        assert report["new_entries"][name] > 0, name
    assert report["first"]["base"][1] == 0  # an empty cache serves nothing
    # New learning rates are arguments of the same programs: loaded, nothing new written.
    assert report["new_entries"]["values"] == 0 and report["first"]["values"][1] > 0
    assert report["fresh"]["values"] != report["fresh"]["base"]


@pytest.mark.slow
def test_the_same_program_is_loaded_from_the_cache(report):
    for name in report["fresh"]:
        assert report["again"][name][1] > 0, name
        assert report["new_entries"][name + " again"] == 0, name


@pytest.mark.slow
def test_another_gdkit_version_shares_no_program(report):
    assert report["other_version_folder"] != report["folder"]
    assert report["other_version_folder"].endswith("xla-0.0.0+other")
    bits, hits = report["other_version"]
    assert hits == 0 and bits == report["fresh"]["base"]


def test_cache_folder_is_per_user_and_per_version(monkeypatch, tmp_path):
    from gdkit import __version__, _cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cache.cache_dir() == tmp_path / "gdkit" / f"xla-{__version__}"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_root() == tmp_path / "home" / ".cache" / "gdkit"
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(_cache.NO_CACHE_ENV, value)
        assert _cache.disabled_by_env() is off


def test_clear_removes_every_version_and_nothing_else(tmp_path):
    from gdkit import _cache

    for sub in ("xla-0.1.0", "xla-0.2.0"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "entry-cache").write_bytes(b"x" * 10)
    (tmp_path / "keep.txt").write_text("mine")
    assert _cache.clear_compilation_cache(tmp_path) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.slow
def test_gdkit_run_writes_the_same_numbers_cold_warm_and_uncached(tmp_path):
    """Three `gdkit run`s of one config: cold cache, warm cache, --no-cache: runs.csv and
    curves.npz the same bytes; the first fills the per-user cache, --no-cache leaves it be."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: c\nobjectives: [{name: rosenbrock}, {name: peaks}]\n"
        "optimizers: [{name: adam, learning_rate: {logspace: [-3, -1, 4]}}]\n"
        "steps: 60\ntol: 1.0e-6\nplots: []\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("GDKIT_NO_CACHE", None)
    folder = tmp_path / "cache" / "gdkit"
    dirs = []
    for extra in ([], [], ["--no-cache"]):
        before = sorted(folder.rglob("*")) if folder.exists() else []
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gdkit",
                "run",
                str(config),
                "--no-progress",
                "--out",
                str(tmp_path / "runs"),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        run_dir = pathlib.Path(proc.stdout.strip().splitlines()[-1])
        meta = json.loads((run_dir / "meta.json").read_text())
        assert set(meta["timings"]) >= {"import", "compile", "run", "write", "wall"}
        assert "time " in proc.stdout and "compile" in proc.stdout.splitlines()[-2]
        dirs.append((run_dir, meta, before, sorted(folder.rglob("*"))))
        time.sleep(1.1)  # run directories are named by the second
    (cold, m1, b1, a1), (warm, m2, _, a2), (off, m3, _, a3) = dirs
    assert b1 == [] and len(a1) > 0 and a2 == a1 == a3  # warm and --no-cache add nothing
    assert m1["compile_cache"].startswith(str(folder)) and m3["compile_cache"] is None
    assert m2["timings"]["compile"] < m1["timings"]["compile"]
    for name in ("runs.csv", "curves.npz"):
        assert (cold / name).read_bytes() == (warm / name).read_bytes() == (off / name).read_bytes()
