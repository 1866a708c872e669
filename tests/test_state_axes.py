"""Which optimizer-state leaves the lanes of a sweep share (`programs.state_axes`).

The definition: a set of leaves all lanes can share is one that vmap accepts with out_axes None
in both init and step (`can_share`), and the answer is such a set to which no other leaf, of
any dtype, can be added. The search only tries integer leaves, and a persistent cache keeps its
answer; both must give exactly that set. The search asks vmap which outputs it batched; the
trial search an older jax falls back to (`can_share` leaf by leaf) must agree with it.
"""

import jax
import numpy as np
import pytest

from gdkit import _cache
from gdkit.engine import plan, programs
from gdkit.optimizers import _registry

LEAST_SQUARES = {"gauss_newton", "levenberg_marquardt"}
# a while loop (line search, trust region) or a Hessian in the step: ~0.1 s per trace
SLOW = {"bfgs", "lbfgs", "ncg", "newton", *LEAST_SQUARES}


def _spec(optimizer: str, grid=None):
    objective = "curve_fit" if optimizer in LEAST_SQUARES else "rosenbrock"
    p = plan.resolve(objective, optimizer, steps=10, x0=np.zeros((1, 2)), grid=grid)
    (_, static, _), *_ = p.combos()
    return p.spec(static)


def _shared(axes) -> set[int]:
    leaves = jax.tree.leaves(axes, is_leaf=lambda a: a is None)
    return {i for i, a in enumerate(leaves) if a is None}


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in _registry.names()
    ],
)
def test_shared_leaves_are_a_maximal_set_vmap_accepts(optimizer):
    spec = _spec(optimizer)
    programs.state_axes.cache_clear()
    shared = _shared(programs.state_axes(spec, 2))
    assert programs.can_share(spec, 2, shared)
    n = len(jax.tree.leaves(programs._lane_state(spec, 2)))
    for i in set(range(n)) - shared:  # float leaves too, which the search does not try
        assert not programs.can_share(spec, 2, shared | {i}), (optimizer, i)


@pytest.mark.parametrize(
    "optimizer",
    [
        "adam",
        "momentum",
        "gd_linesearch",
        *(pytest.param(n, marks=pytest.mark.slow) for n in sorted(SLOW)),
    ],
)
def test_inferred_batching_and_trial_search_agree(optimizer, monkeypatch):
    spec = _spec(optimizer)
    leaves = jax.tree.leaves(programs._lane_state(spec, 2))
    candidates = {i for i, s in enumerate(leaves) if np.issubdtype(s.dtype, np.integer)}
    assert programs._INFER is not None  # this jax has it: the fallback is what is tested below
    inferred = programs._inferred_shareable(spec, 2, candidates)  # it answers as expected
    assert programs._shareable(spec, 2, candidates) == inferred
    monkeypatch.setattr(programs, "_INFER", None)
    assert programs._shareable(spec, 2, candidates) == inferred
    # an `infer` that no longer works as this expects (a private API): the same search
    monkeypatch.setattr(programs, "_INFER", object())
    assert programs._shareable(spec, 2, candidates) == inferred


def test_known_shared_leaves():
    # Adam's step count is the same for every lane; momentum's trace is each lane's own;
    # gradient descent has no state
    assert _shared(programs.state_axes(_spec("adam"), 2)) == {0}
    assert _shared(programs.state_axes(_spec("momentum"), 2)) == set()
    assert jax.tree.leaves(programs.state_axes(_spec("gd"), 2)) == []


def test_the_answer_is_kept_in_the_persistent_cache_and_read_back(tmp_path, monkeypatch):
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))  # traced only, no compile
    try:
        spec = _spec("gd_linesearch")
        programs.state_axes.cache_clear()
        fresh = programs.state_axes(spec, 2)
        (entry,) = (tmp_path / "state-axes").iterdir()
        programs.state_axes.cache_clear()

        def no_trace(*args):
            raise AssertionError("traced although the answer is kept")

        with monkeypatch.context() as m:
            m.setattr(programs, "_shareable", no_trace)
            assert programs.state_axes(spec, 2) == fresh  # read back, nothing traced
        # an unreadable entry, or one naming a leaf that is not a counter, is found again
        for bad in ("{not json", "[0, 1, 2]"):
            entry.write_text(bad)
            programs.state_axes.cache_clear()
            assert programs.state_axes(spec, 2) == fresh
        # the same optimizer with a learning rate per lane instead of one for all: another key
        swept = _spec("gd_linesearch", grid={"learning_rate": [0.1, 0.2]})
        assert swept.lane_names == ("learning_rate",) and spec.lane_names == ()
        programs.state_axes.cache_clear()
        programs.state_axes(swept, 2)
        assert len(list((tmp_path / "state-axes").iterdir())) == 2
        assert _cache.stored("state-axes", "not a program") is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        programs.state_axes.cache_clear()
