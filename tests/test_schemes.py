"""A scheme is one `Scheme` entry: its layouts against the paper's, and a throwaway sixth scheme defined here
alone going through init, forward, FLOPs, checkpoint detection and the benchmark's feasibility check."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from timesformer_jax.bench.cases import unsupported_reason
from timesformer_jax.bench.compiled import compiled_steps
from timesformer_jax.model.flops import forward_flops
from timesformer_jax.convert.config_inference import infer_config
from timesformer_jax.convert.conversion import convert_checkpoint
from timesformer_jax.convert.to_flax import param_key, torch_layout
from timesformer_jax.model import (ATTENTION_TYPES, SCHEMES, Scheme, Stage, TimeSformer, abstract_params, create_model,
                                   register_scheme, unregister_scheme)
from timesformer_jax.model.schemes import JOINT, TIME, Grouping
from timesformer_jax.parallel import create_mesh


def paper_layouts(attention_type, t, h, w):
    """(stage, groups, length) per clip, from the paper's Section 3, written out by hand."""
    n = h * w
    return {
        "space_only": [("spatial", t, n + 1)],  # every frame its own image, with its own cls token
        "joint_space_time": [("joint", 1, t * n + 1)],
        "divided_space_time": [("temporal", n, t), ("spatial", t, n + 1)],
        # Four F x H/2 x W/2 windows, then eight stride-2 groups over the whole clip, each with a cls copy.
        "sparse_local_global": [("local", 4, t * n // 4), ("global", 8, t * n // 8 + 1)],
        "axial": [("temporal", n, t), ("width", t * h, w), ("height", t * w, h + 1)],
    }[attention_type]


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
@pytest.mark.parametrize("t, h, w", [(8, 14, 14), (4, 6, 10)])
def test_layouts_are_the_papers(attention_type, t, h, w):
    layouts = SCHEMES[attention_type].layouts(t, h, w)
    assert [(s.name, s.groups, s.length) for s in layouts] == paper_layouts(attention_type, t, h, w)


def test_tokens_attended_per_query():
    # T = 8, 14 x 14 patches (N = 196): the paper's per-query costs of Section 3.
    expected = {"space_only": 197, "joint_space_time": 8 * 196 + 1, "divided_space_time": 8 + 197,
                "sparse_local_global": 8 * 196 // 4 + 8 * 196 // 8 + 1, "axial": 8 + 14 + 15}
    assert {name: SCHEMES[name].tokens_attended(8, 14, 14) for name in ATTENTION_TYPES} == expected


def test_scheme_needs_one_cls_stage():
    with pytest.raises(ValueError, match="exactly one stage with the cls token"):
        Scheme((Stage("temporal", TIME, False),))


# The throwaway scheme: attention along each row of a frame, then over the whole clip with the cls token.
# Rows split in two halves (width must be even), so the feasibility check has something to refuse.
ROW_HALVES = Grouping("b t h (j w) d -> (b t h j) w d", (("j", 2),))
ROWS_THEN_JOINT = Scheme((Stage("rows", ROW_HALVES, False), Stage("joint", JOINT, True)))
NAME = "rows_then_joint"
FIELDS = dict(image_size=32, patch_size=8, num_frames=4, hidden_size=128, depth=2, num_heads=4, mlp_dim=512,
              num_classes=10, attention_type=NAME)


@pytest.fixture
def sixth_scheme():
    scheme = register_scheme(NAME, ROWS_THEN_JOINT)
    yield scheme
    unregister_scheme(NAME)


def test_registering_checks_the_scheme():
    with pytest.raises(ValueError, match="already registered"):
        register_scheme("divided_space_time", ROWS_THEN_JOINT)
    with pytest.raises(ValueError, match="exactly one stage with the cls token"):
        register_scheme("no_cls", Scheme((Stage("rows", ROW_HALVES, False),)))
    with pytest.raises(ValueError, match="built-in"):
        unregister_scheme("axial")
    assert "no_cls" not in SCHEMES


def official_state(params):
    """Our parameters under the official names in PyTorch layout: the inverse of `to_flax.state_to_params`."""
    state = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        path = tuple(k.key for k in path)
        leaf = np.asarray(leaf)
        layout = torch_layout(path, leaf.shape)
        if path[0] == "patch_embed" and path[-1] == "kernel":
            tensor = np.transpose(leaf, (3, 2, 0, 1))
        elif path[-1] == "kernel":
            tensor = leaf.reshape(layout[1], layout[0]).T
        else:
            tensor = leaf.reshape(layout)
        state[param_key(path)] = np.ascontiguousarray(tensor)
    return state


def test_sixth_scheme_runs_everywhere(sixth_scheme, tmp_path):
    # init and forward, with its own parameters named after its stage
    model = create_model("timesformer_tiny", attention_type=NAME)
    video = jax.random.normal(jax.random.key(1), model.clip_shape(2))
    variables = nn.unbox(model.init(jax.random.key(0), video))
    assert {"rows_norm1", "rows_attn", "rows_fc", "norm1", "attn"} <= set(variables["params"]["blocks_0"])
    logits = model.apply(variables, video)
    assert logits.shape == (2, model.num_classes) and bool(jnp.all(jnp.isfinite(logits)))

    # its layout: one group per half-row (T * H * 2 per clip), W/2 tokens each
    assert sixth_scheme.layouts(4, 4, 6)[0].groups == 4 * 4 * 2 and sixth_scheme.layouts(4, 4, 6)[0].length == 3

    # FLOPs: the analytic count derived from the entry agrees with XLA's
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    xla = compiled_steps(TimeSformer(**FIELDS), batch_size=2, mesh=mesh).forward_cost().flops
    analytic = forward_flops(FIELDS, batch_size=2)["needed"]
    assert analytic == pytest.approx(xla, rel=0.10) and xla >= analytic

    # attention rollout reads the stages' own groupings: row-stochastic, one map per block
    from timesformer_jax.inference.rollout import attention_rollout
    from timesformer_jax.pretrained import PretrainedTimeSformer

    rollout = attention_rollout(PretrainedTimeSformer(model, variables["params"]), np.asarray(video[:1]))
    assert rollout.maps.shape == (model.depth, 4, 4, 4)
    np.testing.assert_allclose(rollout.rollout.sum(axis=1), 1.0, atol=1e-5)

    # the benchmark's feasibility check uses the scheme's own
    assert unsupported_reason(FIELDS) is None
    assert "patch-grid width divisible by 2" in unsupported_reason(dict(FIELDS, image_size=24))

    # checkpoint-kind detection: an official-named state dict of this scheme is recognised, and converts back
    state = official_state(variables["params"])
    assert infer_config(state, num_heads=model.num_heads)["attention_type"] == NAME
    save_file(state, str(tmp_path / "rows.safetensors"))
    module, params, report = convert_checkpoint(tmp_path / "rows.safetensors", preset="timesformer_tiny",
                                                num_heads=model.num_heads)
    assert module.attention_type == NAME and report.source == "official" and not report.initialised
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
        np.testing.assert_array_equal(params_at(params, path), np.asarray(leaf))


def params_at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


def test_detection_refuses_an_unknown_stage():
    model = create_model("timesformer_tiny")
    state = official_state(jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract_params(model)))
    renamed = {k.replace("temporal_", "diagonal_"): v for k, v in state.items()}
    with pytest.raises(ValueError, match=r"no single attention scheme has block parameters \['diagonal_'\]"):
        infer_config(renamed, num_heads=model.num_heads)
