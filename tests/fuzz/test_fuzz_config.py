"""Property tests of recipe/config loading: any ``--set`` overrides and any recipe file give a valid,
saveable RunConfig or a ConfigError, never another exception type."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blastscope.config import ConfigError, RunConfig, config_to_dict, load_recipe, read_config, resolve_config, save_config

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = [
    "data", "train", "arms", "recipe", "paper", "profile", "data.canvas", "data.resize", "data.classes", "data.positive",
    "data.folds", "data.fold_mode", "data.grouping", "data.balance", "data.augment", "data.augment_minority_only",
    "data.synthetic", "data.class_map", "data.class_map.MYO", "train.epochs", "train.batch_size", "train.seed",
    "train.num_workers", "train.eval_batch_size", "train.max_train_batches", "train.optimizer", "train.optimizer.name",
    "train.optimizer.lr", "train.optimizer.momentum", "train.optimizer.weight_decay", "train.schedule",
    "train.schedule.name", "train.schedule.milestones", "train.schedule.gamma", "train.schedule.patience",
    "arms.0", "arms.0.name", "data.canvas.x", "nope", "data.nope", "",
]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=8))
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=8)
VALUES = st.one_of(
    JSONISH.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().replace("\n", " ")),
    st.text(st.sampled_from(list("[]{}:,-!&*|>'\"#%@` \t.0123456789eE+naxyz")), max_size=20),
    st.sampled_from(["[hem, all]", "[all]", "[a, a]", "{a: 1}", "!!python/object:os.system", "&a [*a]", "2020-01-01",
                     "1e400", ".nan", "-.inf", "0x10", "[{name: x, model: sd_net}]", "[{name: x}]", "[{}]", "[1, 2]"]),
)
OVERRIDE = st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS) | st.text(max_size=10), VALUES), st.text(max_size=20))


def _check(config: RunConfig) -> None:
    """A returned config is frozen, typed enough to save, and reads back identical."""
    assert isinstance(config, RunConfig) and config.arms
    ints = [config.data.folds, config.train.epochs, config.train.batch_size, config.train.seed]
    assert all(type(v) is int for v in ints)
    assert config.train.num_workers == "auto" or (type(config.train.num_workers) is int and config.train.num_workers >= 0)
    assert all(v is None or type(v) is int for v in (config.data.canvas, config.data.resize, config.train.max_train_batches))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        save_config(config, path)
        assert config_to_dict(read_config(path)) == config_to_dict(config)


@SETTINGS
@given(st.sampled_from(["sd_net", "sdct_auxnet"]), st.sampled_from([None, "quick"]), st.lists(OVERRIDE, max_size=4))
@example("sd_net", None, ["data.folds=abc"])
@example("sd_net", None, ["arms=5"])
@example("sd_net", None, ["arms=[5]"])
@example("sd_net", None, ["data.classes=[[1], 2]"])
@example("sd_net", None, ["train.epochs=[1"])
@example("sd_net", None, ["data.class_map=[1, 2]"])
@example("sd_net", "quick", ["train.optimizer.lr=.nan"])
@example("sd_net", None, ["data.canvas=2"])
@example("sd_net", None, ["train.schedule.milestones=5"])
@example("sd_net", None, ["arms=[{name: [1], model: sd_net}]"])
@example("sd_net", None, ["data=null"])
@example("sd_net", None, ["train.epochs=3.5"])
@example("sd_net", None, ["data.folds=true"])
@example("sd_net", None, ["train.seed="])
def test_overrides_give_a_valid_config_or_a_config_error(recipe, profile, overrides):
    try:
        config = resolve_config(recipe, profile, overrides)
    except ConfigError:
        return
    _check(config)


def _mutations(base: dict) -> st.SearchStrategy[dict]:
    """The shipped recipe with one value replaced (anywhere in the tree) by arbitrary YAML data."""
    paths: list[tuple] = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(base, ())

    def apply(path, value):
        out = copy.deepcopy(base)
        if not path:
            return value
        node = out
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return out

    return st.builds(apply, st.sampled_from(paths[1:]), JSONISH)


@SETTINGS
@given(st.data())
def test_recipe_files_give_a_valid_config_or_a_config_error(data):
    base = load_recipe("sdct_auxnet")
    text = data.draw(st.one_of(_mutations(base).map(lambda r: yaml.safe_dump(r)), st.text(max_size=200)))
    profile = data.draw(st.sampled_from([None, "quick"]))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "recipe.yaml"
        path.write_text(text)
        try:
            config = resolve_config(str(path), profile, [])
        except ConfigError:
            return
    _check(config)
