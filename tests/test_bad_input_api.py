"""Every bad input to the Python API is refused up front: a ValueError/TypeError whose one-line
message names the argument, raised before anything is compiled or run, with no file written.

One table of calls (the API half of issue 14's bad-input suite; `test_cli.py` has the CLI half).
Each case is `call(tmp)`: input files go under `tmp/"in"`, the working directory is
`tmp/"out"`, which must stay empty.
"""

from __future__ import annotations

import json
import zipfile

import jax
import numpy as np
import optax
import pytest

import gdkit
from gdkit import Checkpoint, SweepResult, objectives, optimizers, starts
from gdkit.engine.sweep import plan
from gdkit.objectives import from_expression

NAN, INF = float("nan"), float("inf")


def sw(**kw):
    """A tiny valid sweep, with `kw` replacing its arguments."""
    args = dict(
        objective="rosenbrock",
        optimizer="gd",
        grid={"learning_rate": 0.001},
        steps=10,
        progress=False,
    )
    args.update(kw)
    return gdkit.sweep(args.pop("objective"), args.pop("optimizer"), **args)


def lr(*values):
    return {"learning_rate": values[0] if len(values) == 1 else list(values)}


def _inp(tmp, name: str, data: bytes):
    path = tmp / "in" / name
    path.write_bytes(data)
    return path


def _tiny_result() -> SweepResult:
    one = np.ones((1, 1), np.float32)
    return SweepResult(
        objective="sphere",
        optimizer="gd",
        fixed={},
        axes={"learning_rate": np.array([0.1]), "start": np.array([0])},
        starts=np.zeros((1, 2)),
        steps=1,
        tol=None,
        tol_metric="none",
        f_min=0.0,
        dtype="float32",
        divergence_threshold=1e12,
        final_loss=one,
        best_loss=one,
        final_x=np.ones((1, 1, 2), np.float32),
        final_grad_norm=one,
        steps_to_tol=-np.ones((1, 1), np.int64),
        status=np.array([["max_steps"]]),
        diverged_step=-np.ones((1, 1), np.int64),
        history=np.ones((1, 1, 2), np.float32),
        history_steps=np.array([0, 1]),
    )


def _saved(tmp, name="r.npz"):
    path = tmp / "in" / name
    _tiny_result().save(path)
    return path


def _truncated(tmp):
    path = _saved(tmp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _npz(tmp, **arrays):
    path = tmp / "in" / "x.npz"
    np.savez(path, **arrays)
    return path


def _meta_npz(tmp, **meta):
    return _npz(tmp, meta=np.array(json.dumps({"format": "gdkit.SweepResult/1", **meta})))


def _f(x):
    return (x**2).sum()


def _momentum_factory(learning_rate, momentum=0.9):
    return optax.sgd(learning_rate, momentum=momentum)


DEV = jax.devices()[0]
ROSEN_BIG = objectives.get("rosenbrock", dim=10**5)
P = pytest.param

SWEEP = [
    # objective and optimizer
    P(lambda t: sw(objective=3), ["objective"], id="objective-int"),
    P(lambda t: sw(objective=None), ["objective"], id="objective-none"),
    P(lambda t: sw(objective="rosenbrok"), ["objective", "rosenbrok"], id="objective-unknown"),
    P(lambda t: sw(optimizer=3), ["optimizer"], id="optimizer-int"),
    P(lambda t: sw(optimizer="adma"), ["optimizer", "adma"], id="optimizer-unknown"),
    # grid: its shape and keys
    P(lambda t: sw(grid=[0.1]), ["grid"], id="grid-list"),
    P(lambda t: sw(grid={"learning_rate": []}), ["learning_rate"], id="grid-empty-values"),
    P(lambda t: sw(grid={"learning_rate": [[0.1]]}), ["learning_rate"], id="grid-2d"),
    P(lambda t: sw(grid={"learning_rate": {"a": 1}}), ["learning_rate"], id="grid-dict-value"),
    P(lambda t: sw(grid={"learning_rate": [1j]}), ["learning_rate"], id="grid-complex"),
    P(lambda t: sw(grid={"1x": 0.1}), ["1x"], id="grid-key-invalid"),
    P(lambda t: sw(grid={("a",): 0.1}), ["grid"], id="grid-key-tuple"),
    P(lambda t: sw(grid={"seed": [1.0]}), ["seed"], id="grid-key-reserved"),
    P(lambda t: sw(grid={"lr": 0.1}), ["lr"], id="grid-unknown-hparam"),
    P(lambda t: sw(optimizer="sgd", grid={"lr": 0.1}), ["lr"], id="grid-unknown-hparam-optax"),
    P(
        lambda t: sw(optimizer=_momentum_factory, grid={"lr": 0.1}),
        ["lr"],
        id="grid-unknown-hparam-factory",
    ),
    # grid: hyperparameter values (gdkit optimizers, optax aliases, user factories)
    P(lambda t: sw(grid=lr(NAN)), ["learning_rate"], id="lr-nan"),
    P(lambda t: sw(grid=lr(INF)), ["learning_rate"], id="lr-inf"),
    P(lambda t: sw(grid=lr(0.0)), ["learning_rate"], id="lr-zero"),
    P(lambda t: sw(grid=lr(-0.1)), ["learning_rate"], id="lr-negative"),
    P(lambda t: sw(grid=lr(0.1, NAN)), ["learning_rate", "nan"], id="lr-swept-nan"),
    P(lambda t: sw(grid=lr(0.1, -1.0)), ["learning_rate", "-1"], id="lr-swept-negative"),
    P(lambda t: sw(grid=lr(0.1, INF)), ["learning_rate"], id="lr-swept-inf"),
    P(lambda t: sw(grid=lr("fast")), ["learning_rate"], id="lr-string"),
    P(lambda t: sw(grid=lr(None)), ["learning_rate"], id="lr-none"),
    P(lambda t: sw(grid=lr(True)), ["learning_rate"], id="lr-bool"),
    P(
        lambda t: sw(optimizer="momentum", grid={"learning_rate": 0.01, "momentum": 1.5}),
        ["momentum"],
        id="momentum-above-1",
    ),
    P(
        lambda t: sw(optimizer="momentum", grid={"learning_rate": 0.01, "momentum": [0.5, 1.0]}),
        ["momentum"],
        id="momentum-swept-1",
    ),
    P(lambda t: sw(optimizer="adam", grid={"b2": 1.0}), ["b2"], id="adam-b2-1"),
    P(lambda t: sw(optimizer="adam", grid={"b1": -0.1}), ["b1"], id="adam-b1-negative"),
    P(lambda t: sw(optimizer="adam", grid={"eps": -1e-8}), ["eps"], id="adam-eps-negative"),
    P(lambda t: sw(optimizer="adam", grid={"eps": [NAN]}), ["eps"], id="adam-eps-nan"),
    P(lambda t: sw(optimizer="lbfgs", grid={"memory_size": 0}), ["memory_size"], id="lbfgs-m0"),
    P(
        lambda t: sw(optimizer="lbfgs", grid={"memory_size": [3, 0]}),
        ["memory_size"],
        id="lbfgs-m-swept-0",
    ),
    P(
        lambda t: sw(optimizer="lbfgs", grid={"memory_size": [3.0, 5.0]}),
        ["memory_size"],
        id="lbfgs-m-float",
    ),
    P(lambda t: sw(grid={"schedule": "linear"}), ["schedule"], id="schedule-unknown"),
    P(lambda t: sw(grid={"clip": 0.0}), ["clip"], id="clip-zero"),
    P(lambda t: sw(optimizer="sgd", grid=lr(-0.1)), ["learning_rate"], id="optax-lr-negative"),
    P(lambda t: sw(optimizer="sgd", grid=lr(NAN)), ["learning_rate"], id="optax-lr-nan"),
    P(
        lambda t: sw(optimizer="sgd", grid={"learning_rate": 0.1, "momentum": 1.5}),
        ["momentum"],
        id="optax-momentum-above-1",
    ),
    P(
        lambda t: sw(optimizer=_momentum_factory, grid=lr(0.1, NAN)),
        ["learning_rate"],
        id="factory-lr-nan",
    ),
    P(
        lambda t: sw(optimizer=_momentum_factory, grid=lr(INF)),
        ["learning_rate"],
        id="factory-lr-inf",
    ),
    P(lambda t: sw(grid={"batch_size": 4}, seeds=2), ["batch_size"], id="batch-not-data"),
    P(
        lambda t: sw(objective="linear_regression", grid={"batch_size": 4}),
        ["seeds"],
        id="batch-no-seeds",
    ),
    P(
        lambda t: sw(objective="linear_regression", grid={"batch_size": [0]}, seeds=2),
        ["batch_size"],
        id="batch-size-0",
    ),
    P(
        lambda t: sw(objective="linear_regression", grid={"batch_size": 10**9}, seeds=2),
        ["batch_size"],
        id="batch-size-above-samples",
    ),
    P(lambda t: sw(stepz=3), ["stepz"], id="unknown-argument"),
    P(lambda t: sw(optimizer="adam", grid={"b1": 1.5}), ["b1"], id="adam-b1-above-1"),
    # x0 and starts
    P(lambda t: sw(x0=[NAN, 1.0]), ["x0"], id="x0-nan"),
    P(lambda t: sw(x0=[INF, 1.0]), ["x0"], id="x0-inf"),
    P(lambda t: sw(x0=[1.0, 2.0, 3.0]), ["x0"], id="x0-wrong-dim"),
    P(lambda t: sw(x0=[[1.0, 2.0], [3.0]]), ["x0"], id="x0-ragged"),
    P(lambda t: sw(x0="ab"), ["x0"], id="x0-string"),
    P(lambda t: sw(x0=[[[1.0, 2.0]]]), ["x0"], id="x0-3d"),
    P(lambda t: sw(x0=[]), ["x0"], id="x0-empty"),
    P(lambda t: sw(x0=np.zeros((0, 2))), ["x0"], id="x0-no-rows"),
    P(lambda t: sw(x0={"a": 1}), ["x0"], id="x0-dict"),
    # seeds
    P(lambda t: sw(seeds=0), ["seeds"], id="seeds-0"),
    P(lambda t: sw(seeds=-1), ["seeds"], id="seeds-negative"),
    P(lambda t: sw(seeds=1.5), ["seeds"], id="seeds-float"),
    P(lambda t: sw(seeds=True), ["seeds"], id="seeds-bool"),
    P(lambda t: sw(seeds="3"), ["seeds"], id="seeds-string"),
    P(lambda t: sw(seeds=10**12), ["seeds"], id="seeds-10e12"),
    P(
        lambda t: sw(grid=lr(*np.linspace(1e-3, 1e-2, 10**4)), seeds=2**32),
        ["seeds", "memory"],
        id="seeds-memory",
    ),
    P(lambda t: sw(seeds=10**30), ["seeds"], id="seeds-10e30"),
    P(lambda t: sw(seeds=[]), ["seeds"], id="seeds-empty-list"),
    P(lambda t: sw(seeds=[-1]), ["seeds"], id="seeds-list-negative"),
    P(lambda t: sw(seeds=[2**40]), ["seeds"], id="seeds-list-too-big"),
    P(lambda t: sw(seeds=[1, 1]), ["seeds"], id="seeds-list-repeated"),
    P(lambda t: sw(seeds=[1.5]), ["seeds"], id="seeds-list-float"),
    P(lambda t: sw(seeds=[[1]]), ["seeds"], id="seeds-list-2d"),
    P(
        lambda t: sw(
            grid=lr(*np.linspace(0.001, 0.01, 10**5)), x0=np.zeros((10**4, 2)), seeds=10**4
        ),
        ["memory", "grid"],
        id="lanes-exceed-memory",
    ),
    P(
        lambda t: sw(steps=10**9, record_every=1, seeds=10**4),
        ["memory", "seeds"],
        id="history-exceeds-memory",
    ),
    P(
        lambda t: sw(objective=ROSEN_BIG, optimizer="bfgs", grid=lr(1.0)),
        ["memory_budget"],
        id="one-lane-exceeds-memory-budget",
    ),
    P(
        lambda t: sw(steps=10**8, record_every=1, chunk_steps=1),
        ["chunk_steps"],
        id="too-many-chunks",
    ),
    # steps, tol, record_every, chunking
    P(lambda t: sw(steps=0), ["steps"], id="steps-0"),
    P(lambda t: sw(steps=-1), ["steps"], id="steps-negative"),
    P(lambda t: sw(steps=1.5), ["steps"], id="steps-float"),
    P(lambda t: sw(steps=10.0), ["steps"], id="steps-float-integral"),
    P(lambda t: sw(steps=True), ["steps"], id="steps-bool"),
    P(lambda t: sw(steps="10"), ["steps"], id="steps-string"),
    P(lambda t: sw(steps=None), ["steps"], id="steps-none"),
    P(lambda t: sw(steps=10**12), ["steps"], id="steps-huge"),
    P(lambda t: sw(tol=NAN), ["tol"], id="tol-nan"),
    P(lambda t: sw(tol=INF), ["tol"], id="tol-inf"),
    P(lambda t: sw(tol=-1.0), ["tol"], id="tol-negative"),
    P(lambda t: sw(tol="small"), ["tol"], id="tol-string"),
    P(lambda t: sw(tol=[1e-3]), ["tol"], id="tol-list"),
    P(lambda t: sw(record_every=1.5), ["record_every"], id="record-every-float"),
    P(lambda t: sw(record_every=2.0), ["record_every"], id="record-every-float-integral"),
    P(lambda t: sw(record_every=0), ["record_every"], id="record-every-0"),
    P(lambda t: sw(record_every=-1), ["record_every"], id="record-every-negative"),
    P(lambda t: sw(record_every=11), ["record_every"], id="record-every-above-steps"),
    P(lambda t: sw(record_every="2"), ["record_every"], id="record-every-string"),
    P(lambda t: sw(chunk_steps=0), ["chunk_steps"], id="chunk-steps-0"),
    P(lambda t: sw(chunk_steps=-5), ["chunk_steps"], id="chunk-steps-negative"),
    P(lambda t: sw(chunk_steps=2.5), ["chunk_steps"], id="chunk-steps-float"),
    P(lambda t: sw(unroll=0), ["unroll"], id="unroll-0"),
    P(lambda t: sw(unroll=-1), ["unroll"], id="unroll-negative"),
    P(lambda t: sw(unroll=1.5), ["unroll"], id="unroll-float"),
    P(lambda t: sw(unroll=True), ["unroll"], id="unroll-bool"),
    P(lambda t: sw(tile_lanes=0), ["tile_lanes"], id="tile-lanes-0"),
    P(lambda t: sw(tile_lanes=2.5), ["tile_lanes"], id="tile-lanes-float"),
    P(lambda t: sw(engine="gpu"), ["sweep: engine", "'auto', 'xla', 'fused'"], id="engine-gpu"),
    P(lambda t: sw(engine=None), ["sweep: engine", "'auto', 'xla', 'fused'"], id="engine-none"),
    P(lambda t: sw(engine=1), ["sweep: engine", "'auto', 'xla', 'fused'"], id="engine-int"),
    P(lambda t: sw(memory_budget=-1), ["memory_budget"], id="memory-budget-negative"),
    P(lambda t: sw(memory_budget=0), ["memory_budget"], id="memory-budget-0"),
    P(lambda t: sw(memory_budget="4G"), ["memory_budget"], id="memory-budget-string"),
    P(lambda t: sw(memory_budget=None), ["memory_budget"], id="memory-budget-none"),
    P(lambda t: sw(memory_budget=NAN), ["memory_budget"], id="memory-budget-nan"),
    P(lambda t: sw(memory_budget=16), ["memory_budget"], id="memory-budget-below-one-lane"),
    P(lambda t: sw(max_lanes_per_chunk=0), ["max_lanes_per_chunk"], id="max-lanes-0"),
    P(lambda t: sw(max_lanes_per_chunk=-3), ["max_lanes_per_chunk"], id="max-lanes-negative"),
    P(lambda t: sw(max_lanes_per_chunk=2.5), ["max_lanes_per_chunk"], id="max-lanes-float"),
    P(lambda t: sw(max_lanes_per_chunk="x"), ["max_lanes_per_chunk"], id="max-lanes-string"),
    # devices
    P(lambda t: sw(devices="x"), ["devices"], id="devices-string"),
    P(lambda t: sw(devices=0), ["devices"], id="devices-0"),
    P(lambda t: sw(devices=99), ["devices"], id="devices-too-many"),
    P(lambda t: sw(devices=[]), ["devices"], id="devices-empty"),
    P(lambda t: sw(devices=[None]), ["devices"], id="devices-none-in-list"),
    P(lambda t: sw(devices=1.5), ["devices"], id="devices-float"),
    P(lambda t: sw(devices=True), ["devices"], id="devices-bool"),
    P(lambda t: sw(devices=[DEV, DEV]), ["devices"], id="devices-repeated"),
    # checkpoint
    P(lambda t: sw(checkpoint=3), ["checkpoint"], id="checkpoint-int"),
    P(lambda t: sw(checkpoint=Checkpoint(t / "out")), ["checkpoint"], id="checkpoint-dir"),
    P(lambda t: Checkpoint(t / "out" / "c.npz", every=-1.0), ["every"], id="checkpoint-every-neg"),
    P(lambda t: Checkpoint(t / "out" / "c.npz", every=NAN), ["every"], id="checkpoint-every-nan"),
    P(lambda t: Checkpoint(t / "out" / "c.npz", every="x"), ["every"], id="checkpoint-every-str"),
    P(lambda t: Checkpoint(3), ["path"], id="checkpoint-path-int"),
    P(lambda t: Checkpoint(t / "out" / "c.npz", write=1), ["write"], id="checkpoint-write-int"),
    # dtype, noise, divergence threshold, trajectories, progress
    P(lambda t: sw(dtype="float16"), ["dtype"], id="dtype-float16"),
    P(lambda t: sw(dtype="banana"), ["dtype"], id="dtype-unknown"),
    P(lambda t: sw(dtype=int), ["dtype"], id="dtype-int"),
    P(lambda t: sw(dtype=3), ["dtype"], id="dtype-number"),
    P(lambda t: sw(noise=0.1), ["noise", "seeds"], id="noise-without-seeds"),
    P(lambda t: sw(noise=-0.1, seeds=2), ["noise"], id="noise-negative"),
    P(lambda t: sw(noise=0.0, seeds=2), ["noise"], id="noise-zero"),
    P(lambda t: sw(noise=NAN, seeds=2), ["noise"], id="noise-nan"),
    P(lambda t: sw(noise=INF, seeds=2), ["noise"], id="noise-inf"),
    P(lambda t: sw(noise="x", seeds=2), ["noise"], id="noise-string"),
    P(lambda t: sw(divergence_threshold=0.0), ["divergence_threshold"], id="divergence-0"),
    P(lambda t: sw(divergence_threshold=NAN), ["divergence_threshold"], id="divergence-nan"),
    P(lambda t: sw(divergence_threshold="x"), ["divergence_threshold"], id="divergence-str"),
    P(lambda t: sw(trajectories="worst"), ["trajectories"], id="trajectories-unknown"),
    P(lambda t: sw(trajectories=[5]), ["trajectories"], id="trajectories-out-of-range"),
    P(lambda t: sw(trajectories=[-1]), ["trajectories"], id="trajectories-negative"),
    P(lambda t: sw(trajectories=[0.5]), ["trajectories"], id="trajectories-float"),
    P(lambda t: sw(trajectories=3), ["trajectories"], id="trajectories-int"),
    P(lambda t: sw(progress=1), ["progress"], id="progress-number"),
    P(lambda t: sw(progress=None), ["progress"], id="progress-none"),
    # plan() checks the same arguments
    P(
        lambda t: plan("rosenbrock", "gd", grid=lr(NAN), steps=10),
        ["learning_rate"],
        id="plan-lr-nan",
    ),
    P(
        lambda t: plan("rosenbrock", "gd", grid=lr(0.1), steps=10, max_lanes_per_chunk=0),
        ["max_lanes_per_chunk"],
        id="plan-max-lanes-0",
    ),
    P(
        lambda t: plan("rosenbrock", "gd", grid=lr(0.1), steps=10, seeds=10**12),
        ["seeds"],
        id="plan-seeds-10e12",
    ),
]

OPTIMIZERS = [
    P(lambda t: optimizers.get("adam", learning_rate=NAN), ["learning_rate"], id="opt-get-lr-nan"),
    P(lambda t: optimizers.adam(learning_rate=INF), ["learning_rate"], id="opt-adam-lr-inf"),
    P(lambda t: optimizers.adam(learning_rate=0.0), ["learning_rate"], id="opt-adam-lr-0"),
    P(lambda t: optimizers.momentum(momentum=1.5), ["momentum"], id="opt-momentum-1.5"),
    P(lambda t: optimizers.adam(b2=1.0), ["b2"], id="opt-adam-b2-1"),
    P(lambda t: optimizers.adam(eps=-1.0), ["eps"], id="opt-adam-eps-negative"),
    P(lambda t: optimizers.get("nesterv"), ["nesterv"], id="opt-get-unknown"),
    P(lambda t: optimizers.get("adam", lr=0.1), ["lr"], id="opt-get-unknown-hparam"),
    P(lambda t: optimizers.get(3), ["optimizer"], id="opt-get-int-name"),
    P(lambda t: optimizers.lbfgs(memory_size=0), ["memory_size"], id="opt-lbfgs-m0"),
    P(
        lambda t: optimizers.adam(learning_rate=[0.1] * 100_000),
        ["learning_rate"],
        id="opt-adam-lr-huge-list",
    ),
    P(
        lambda t: optimizers.adam(learning_rate=np.full(100_000, -1.0)),
        ["learning_rate"],
        id="opt-adam-lr-huge-array",
    ),
    P(
        lambda t: optimizers.adam(learning_rate=10**100000),
        ["learning_rate"],
        id="opt-adam-lr-bigint",
    ),
]

OBJECTIVES = [
    P(lambda t: objectives.get("rosenbrok"), ["rosenbrok"], id="obj-get-unknown"),
    P(lambda t: objectives.get(3), ["objective"], id="obj-get-int-name"),
    P(lambda t: objectives.get("rosenbrock", dim=0), ["dim"], id="obj-dim-0"),
    P(lambda t: objectives.get("rosenbrock", dim=2.5), ["dim"], id="obj-dim-float"),
    P(lambda t: objectives.get("rosenbrock", dim=10**12), ["dim"], id="obj-dim-huge"),
    P(lambda t: objectives.get("sphere", dim=10**12), ["dim"], id="obj-sphere-dim-huge"),
    P(lambda t: objectives.get("rosenbrock", dims=3), ["dims"], id="obj-unknown-param"),
    P(lambda t: objectives.wrap(_f, dim=0), ["dim"], id="obj-wrap-dim-0"),
    P(lambda t: objectives.wrap(_f, dim=1.5), ["dim"], id="obj-wrap-dim-float"),
    P(lambda t: objectives.wrap(_f, dim=10**12), ["dim"], id="obj-wrap-dim-huge"),
    P(lambda t: objectives.wrap(_f, x0=[NAN, 0.0]), ["x0"], id="obj-wrap-x0-nan"),
    P(lambda t: objectives.wrap(_f, x0=["a", 0.0]), ["x0"], id="obj-wrap-x0-string"),
    P(lambda t: objectives.wrap(_f, bounds=[[0, NAN], [0, 1]]), ["bounds"], id="obj-bounds-nan"),
    P(lambda t: objectives.wrap(_f, bounds=[[0, INF], [0, 1]]), ["bounds"], id="obj-bounds-inf"),
    P(lambda t: objectives.wrap(_f, bounds=[[1, 0], [0, 1]]), ["bounds"], id="obj-bounds-reversed"),
    P(lambda t: objectives.wrap(_f, dim=2, minima=[([0, 0], INF)]), ["minima"], id="obj-min-f-inf"),
    P(lambda t: objectives.wrap(_f, dim=2, minima=[([NAN, 0], 0)]), ["minima"], id="obj-min-x-nan"),
    P(
        lambda t: objectives.wrap(_f, dim=2, minima=[([0, 0], [1, 2])]),
        ["minima"],
        id="obj-min-f-list",
    ),
]

EXPR = "expression"
EXPRESSIONS = [
    P(lambda t: from_expression("9**9**9 + x"), [EXPR], id="expr-pow-overflow"),
    P(lambda t: from_expression("1/0 + x"), [EXPR], id="expr-div-zero"),
    P(lambda t: from_expression("x + 1e999"), [EXPR], id="expr-inf-literal"),
    P(lambda t: from_expression("x * 10**400"), [EXPR], id="expr-int-overflow"),
    P(lambda t: from_expression("x * " + "1" * 5000), [EXPR], id="expr-int-too-many-digits"),
    P(lambda t: from_expression("x + log(0)"), [EXPR], id="expr-log-zero"),
    P(lambda t: from_expression("x + sqrt(-1)"), [EXPR], id="expr-sqrt-negative"),
    P(lambda t: from_expression("x * (-8)**(1/3)"), [EXPR], id="expr-complex-power"),
    P(lambda t: from_expression("(" * 10_000 + "x" + ")" * 10_000), [EXPR], id="expr-parens-10000"),
    P(lambda t: from_expression("(" * 260 + "x" + ")" * 260), [EXPR], id="expr-parens-260"),
    P(lambda t: from_expression("-" * 9000 + "x"), [EXPR], id="expr-unary-9000"),
    P(lambda t: from_expression("- " * 3000 + "x"), [EXPR], id="expr-unary-spaced-3000"),
    P(lambda t: from_expression("+".join(["x"] * 5000)), [EXPR], id="expr-sum-5000"),
    P(lambda t: from_expression("*".join(["x"] * 1000)), [EXPR], id="expr-product-1000"),
    P(lambda t: from_expression("x" * 20_000), [EXPR], id="expr-too-long"),
    P(lambda t: from_expression("nope(x)"), ["nope"], id="expr-unknown-function"),
    P(lambda t: from_expression("__import__('os')"), ["__import__"], id="expr-dunder-import"),
    P(lambda t: from_expression("().__class__"), [EXPR], id="expr-dunder-class"),
    P(lambda t: from_expression("x.real"), ["attribute"], id="expr-attribute"),
    P(lambda t: from_expression("(lambda: 1)()"), ["lambda"], id="expr-lambda"),
    P(lambda t: from_expression("x[0]"), ["subscript"], id="expr-subscript"),
    P(lambda t: from_expression(""), [EXPR], id="expr-empty"),
    P(lambda t: from_expression(3), [EXPR], id="expr-not-a-string"),
    P(lambda t: from_expression("x +"), [EXPR], id="expr-syntax"),
    P(lambda t: from_expression("x", ["x", "x"]), ["variables"], id="expr-variables-repeat"),
    P(lambda t: from_expression("x", [1]), ["variable"], id="expr-variables-int"),
]

STARTS = [
    P(lambda t: starts.grid("rosenbrock", 0), ["n"], id="starts-grid-0"),
    P(lambda t: starts.grid("rosenbrock", 2.5), ["n"], id="starts-grid-float"),
    P(lambda t: starts.grid("rosenbrock", True), ["n"], id="starts-grid-bool"),
    P(lambda t: starts.grid("rosenbrock", 10**9), ["n", "memory"], id="starts-grid-huge"),
    P(lambda t: starts.uniform("rosenbrock", 0), ["n"], id="starts-uniform-0"),
    P(lambda t: starts.uniform("rosenbrock", 10**12), ["n", "memory"], id="starts-uniform-huge"),
    P(
        lambda t: starts.uniform("rosenbrock", 3, seed=-1),
        ["seed"],
        id="starts-uniform-seed-negative",
    ),
    P(
        lambda t: starts.uniform("rosenbrock", 3, seed="x"),
        ["seed"],
        id="starts-uniform-seed-string",
    ),
    P(
        lambda t: starts.uniform("rosenbrock", 3, seed=1.5),
        ["seed"],
        id="starts-uniform-seed-float",
    ),
    P(lambda t: starts.default(3), ["objective"], id="starts-default-int"),
    P(lambda t: starts.grid("rosenbrok", 3), ["rosenbrok"], id="starts-grid-unknown-objective"),
]

ROSEN = objectives.get("rosenbrock")
GRADCHECK = [
    P(lambda t: gdkit.check_grad(ROSEN, [NAN, 1.0]), ["x"], id="grad-x-nan"),
    P(lambda t: gdkit.check_grad(ROSEN, [1.0, 2.0, 3.0]), ["x"], id="grad-x-wrong-dim"),
    P(lambda t: gdkit.check_grad(ROSEN, [[1.0, 2.0]]), ["x"], id="grad-x-2d"),
    P(lambda t: gdkit.check_grad(ROSEN, "ab"), ["x"], id="grad-x-string"),
    P(lambda t: gdkit.check_grad(ROSEN, [1.0, 2.0], step=0.0), ["step"], id="grad-step-0"),
    P(lambda t: gdkit.check_grad(ROSEN, [1.0, 2.0], step=-1e-3), ["step"], id="grad-step-negative"),
    P(lambda t: gdkit.check_grad(ROSEN, [1.0, 2.0], step=NAN), ["step"], id="grad-step-nan"),
    P(lambda t: gdkit.check_grad(ROSEN, [1.0, 2.0], step="x"), ["step"], id="grad-step-string"),
    P(lambda t: gdkit.check_grad(3, [1.0, 2.0]), ["objective"], id="grad-objective-int"),
]

LOAD = [
    P(lambda t: SweepResult.load(_inp(t, "g.npz", b"garbage" * 10)), ["g.npz"], id="load-garbage"),
    P(lambda t: SweepResult.load(_inp(t, "e.npz", b"")), ["e.npz"], id="load-empty-file"),
    P(lambda t: SweepResult.load(_truncated(t)), ["r.npz"], id="load-truncated"),
    P(lambda t: SweepResult.load(_npz(t, a=np.ones(3))), ["x.npz"], id="load-wrong-content"),
    P(lambda t: SweepResult.load(_npz(t, meta=np.array("{"))), ["x.npz"], id="load-meta-not-json"),
    P(
        lambda t: SweepResult.load(_npz(t, meta=np.array("[1]"))),
        ["x.npz"],
        id="load-meta-not-dict",
    ),
    P(lambda t: SweepResult.load(_meta_npz(t)), ["x.npz"], id="load-meta-fields-missing"),
    P(
        lambda t: SweepResult.load(_npz(t, meta=np.array([{"a": 1}], dtype=object))),
        ["x.npz"],
        id="load-pickled-object",
    ),
    P(lambda t: SweepResult.load(t / "in"), ["in"], id="load-a-directory"),
    P(lambda t: SweepResult.load(t / "in" / "missing.npz"), ["missing.npz"], id="load-missing"),
    P(lambda t: SweepResult.load(3), ["path"], id="load-path-int"),
]


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    """`tmp/"in"` for inputs; `tmp/"out"` is the working directory, and no work may start."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")
    from gdkit.engine import runner as _runner

    def work(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    for name in ("run_lanes", "run_trajectories", "_compiled"):
        monkeypatch.setattr(_runner, name, work)
    yield tmp_path
    assert not any((tmp_path / "out").iterdir()), "a refused call wrote files"


def _refused(call, names, tmp):
    with pytest.raises((ValueError, TypeError, OSError)) as info:
        call(tmp)
    msg = str(info.value)
    assert "\n" not in msg, msg[:500]
    assert len(msg) <= 400, msg[:500]
    for name in names:
        assert name in msg, msg
    return info.value


@pytest.mark.parametrize(("call", "names"), SWEEP + OPTIMIZERS + OBJECTIVES + STARTS + GRADCHECK)
def test_bad_call_is_refused_naming_the_argument(call, names, tmp):
    err = _refused(call, names, tmp)
    assert isinstance(err, ValueError | TypeError), type(err)


@pytest.mark.parametrize(("call", "names"), EXPRESSIONS)
def test_bad_expression_is_refused_before_it_runs(call, names, tmp):
    err = _refused(call, names, tmp)
    assert isinstance(err, objectives.ExpressionError), type(err)


@pytest.mark.parametrize(("call", "names"), LOAD)
def test_bad_result_file_is_refused_naming_the_file(call, names, tmp):
    err = _refused(call, names, tmp)
    # A file that is not there (or a folder) is the operating system's error, as for open();
    # every file that is there but is not a gdkit result is a ValueError saying so.
    if isinstance(err, OSError):
        assert isinstance(err, FileNotFoundError | IsADirectoryError), type(err)
    else:
        assert isinstance(err, ValueError | TypeError), type(err)
        if not isinstance(err, TypeError):
            assert "not a gdkit SweepResult file" in str(err)


def test_a_saved_result_still_loads(tmp_path):
    path = tmp_path / "r.npz"
    _tiny_result().save(path)
    back = SweepResult.load(path)
    np.testing.assert_array_equal(back.final_x, _tiny_result().final_x)


def test_a_checkpoint_may_be_a_path(tmp_path):
    # A path is a Checkpoint with the default settings: same numbers, and the file is gone.
    path = tmp_path / "ck.npz"
    a = sw(grid=lr(0.001, 0.002), checkpoint=str(path))
    b = sw(grid=lr(0.001, 0.002), checkpoint=Checkpoint(path))
    c = sw(grid=lr(0.001, 0.002))
    np.testing.assert_array_equal(a.final_x, c.final_x)
    np.testing.assert_array_equal(b.final_x, c.final_x)
    assert not path.exists()


def test_hyperparameter_checks_never_touch_traced_values():
    # Inside vmap the values are tracers: validation must leave them alone (DESIGN.md).
    def final(lr_):
        opt = optimizers.adam(learning_rate=lr_)
        x = jax.numpy.ones(2)
        u, _ = opt.update(x, opt.init(x), x)
        return u

    out = jax.vmap(final)(jax.numpy.array([0.1, -0.1]))
    np.testing.assert_allclose(out[:, 0], [-0.1, 0.1], rtol=1e-5)


def test_messages_of_huge_values_stay_short(tmp):
    with pytest.raises(ValueError) as info:
        sw(x0=[[NAN] * 2] * 100_000)
    assert len(str(info.value)) <= 400


def test_zipfile_errors_never_escape(tmp):
    # numpy raises zipfile.BadZipFile (not a ValueError) for a damaged archive.
    with pytest.raises(ValueError):
        SweepResult.load(_inp(tmp, "z.npz", b"PK\x03\x04" + b"\0" * 100))
    assert not issubclass(zipfile.BadZipFile, ValueError)
