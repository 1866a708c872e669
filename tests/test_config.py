"""Config files: shipped configs load, YAML numbers parse, overrides apply, bad input is named."""

import pathlib

import numpy as np
import pytest

from gdkit.experiments import config

CONFIGS = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.yaml"))

BASE = """
name: t
objectives:
  - {name: rosenbrock}
  - {name: quadratic, dim: 10, condition_number: 100}
optimizers:
  - name: adam
    learning_rate: {logspace: [-4, 0, 64]}
  - {name: gd, learning_rate: [1e-3, 2e-3]}
steps: 100
tol: 1e-6
"""


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    cfg = config.load(path)
    assert cfg.objectives and cfg.optimizers


def test_scientific_notation_is_a_number(base):
    cfg = config.load(base)
    assert cfg.tol == 1e-6 and isinstance(cfg.tol, float)
    np.testing.assert_array_equal(cfg.optimizers[1].swept()["learning_rate"], [1e-3, 2e-3])
    assert config.parse_yaml("a: 1e3\nb: -2.5E-4\nc: 7\nd: .5\ne: 1.0e+2") == {
        "a": 1000.0,
        "b": -2.5e-4,
        "c": 7,
        "d": 0.5,
        "e": 100.0,
    }


def test_sweeps_expand_like_numpy(base):
    cfg = config.load(base)
    np.testing.assert_allclose(cfg.optimizers[0].swept()["learning_rate"], np.logspace(-4, 0, 64))
    assert config.sweep_values({"linspace": [0, 1, 5]}).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert config.sweep_values(0.5) is None and config.sweep_values("cosine_decay") is None


def test_overrides(base):
    cfg = config.load(
        base,
        [
            "optimizers.0.name=rmsprop",
            "steps=500",
            "optimizers.1.momentum=0.9",
            "optimizers.1.name=momentum",
            "starts={kind: grid, n: 3}",
        ],
    )
    assert cfg.optimizers[0].name == "rmsprop" and cfg.steps == 500
    assert cfg.optimizers[1].fixed() == {"momentum": 0.9}
    assert cfg.starts.kind == "grid" and cfg.starts.n == 3


def test_resolved_yaml_round_trips(base, tmp_path):
    cfg = config.load(base, ["steps=7"])
    again = tmp_path / "again.yaml"
    again.write_text(config.to_yaml(cfg))
    assert config.load(again) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stepz=3"], "stepz: unknown key (did you mean 'steps'?)"),
        (["tol=-1"], "tol: input should be greater than 0, got -1"),
        (["tol=abc"], "tol: must be a number, got 'abc'"),
        (["steps=1.5"], "steps: "),
        (["seeds=0"], "seeds: "),
        (["dtype=float16"], "dtype: input should be 'float32' or 'float64'"),
        (["platform=tpu"], "platform: "),
        (["engine=gpu"], "engine: input should be 'auto', 'xla' or 'fused'"),
        (["plots=[contour, pie]"], "plots.1: "),
        (["plots={kinds: [loss], pathz: []}"], "plots.pathz: unknown key (did you mean 'paths'?)"),
        (
            ["plots={paths: [{momentum: 0.9}]}"],
            "plots.paths.0: {'momentum': 0.9} must give every swept hyperparameter of an "
            "optimizer; swept sets: [learning_rate]",
        ),
        (
            ["plots={paths: [{learning_rate: 0.001}, {learning_rate: 0.5}]}"],
            "plots.paths.1.learning_rate: 0.5 is not a swept value of learning_rate (adam: "
            "0.0001, 0.0001157, 0.000134, 0.0001551, 0.0001795, 0.0002077, ...; gd: 0.001, 0.002)",
        ),
        (
            ["optimizers.1.learning_rate=-0.1"],
            "optimizers.1.learning_rate: must be finite and in (0",
        ),
        (["optimizers.1.learning_rate=[0.1, -0.1]"], "optimizers.1.learning_rate: "),
        (["optimizers.0.b1=1.5"], "optimizers.0.b1: must be"),
        (["optimizers.0.lr=0.1"], "optimizers.0.lr: adam has no such hyperparameter"),
        (["optimizers.0.name=adma"], "optimizers.0.name: unknown optimizer 'adma'"),
        (["optimizers.0.learning_rate={logspace: [1, 2]}"], "optimizers.0.learning_rate: logspace"),
        (["optimizers.0.learning_rate={range: [1, 2, 3]}"], "optimizers.0.learning_rate: expected"),
        (["optimizers.0.learning_rate=[a, b]"], "optimizers.0.learning_rate: a swept list"),
        (["optimizers.5.name=x"], "optimizers.5: no item 5"),
        (["objectives.1.dim=0"], "objectives.1.dim: must be an integer >= 1, got 0"),
        (["objectives.0.dimm=3"], "objectives.0.dimm: objective 'rosenbrock' has no parameter"),
        (["objectives.0.name=rosenbrok"], "did you mean 'rosenbrock'"),
        (["objectives.0={expr: 'x.__class__'}"], "objectives.0: attribute access"),
        (["objectives.0={expr: 'x', name: sphere}"], "exactly one of 'name', 'expr' or 'model'"),
        (["starts={kind: grids, n: 3}"], "starts: "),
        (["starts={kind: grid}"], "starts.n: required key is missing"),
        (
            ["starts={kind: uniform, n: 3, sed: 1}"],
            "starts.sed: unknown key (did you mean 'seed'?)",
        ),
        (["name=a b"], "name: "),
        (["steps"], "expected KEY=VALUE"),
        (["noise=0.1"], "noise: gradient noise needs seeds"),
        (["noise=-1", "seeds=2"], "noise: input should be greater than 0"),
        (
            ["optimizers.1.batch_size=[full, 10]"],
            "optimizers.1.batch_size: mini-batches need seeds",
        ),
        (["optimizers.1.batch_size=[0]", "seeds=2"], "optimizers.1.batch_size: expected full"),
        (["optimizers.1.batch_size=[4]", "seeds=2"], "is not a data objective"),
        (["steps=[1"], "malformed YAML"),
    ],
)
def test_bad_values_name_the_key(base, overrides, message):
    with pytest.raises(config.ConfigError) as info:
        config.load(base, overrides)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_bad_files(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nobjectives: [\n")
    with pytest.raises(config.ConfigError, match=r"bad.yaml: line \d+: malformed YAML"):
        config.load(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(config.ConfigError, match="mapping"):
        config.load(bad)
    bad.write_text("name: t\nsteps: 10\noptimizers: [{name: gd}]\n")
    with pytest.raises(config.ConfigError, match="objectives: required key is missing"):
        config.load(bad)


def test_plot_paths_pick_the_lanes_of_their_grid_points(base):
    """`plots.paths` entries become the flat lane indices whose trajectories are recorded: the
    first start and seed at that grid point, in the result's C order."""
    from gdkit.experiments import experiment

    cfg = config.load(
        base,
        ["plots={kinds: [contour], paths: [{learning_rate: 0.002}, {learning_rate: 0.001}]}"],
    )
    assert cfg.plots.kinds == ["contour"]
    jobs = experiment.plan(cfg)
    lanes = [experiment.path_lanes(cfg, job) for job in jobs]
    # adam sweeps 64 learning rates, not 0.001 nor 0.002 exactly: no lanes; gd has both.
    assert lanes == [[], [1, 0], [], [1, 0]]
    short = config.load(base, ["plots=[loss]"])
    assert short.plots.kinds == ["loss"] and short.plots.paths == []
    again = config.validate(__import__("yaml").safe_load(config.to_yaml(cfg)))
    assert again.plots == cfg.plots  # the resolved config round-trips
