"""ijepa.Config: defaults, presets, overrides, validation, C round trip."""

import pickle

import numpy as np
import pytest

import ijepa
from conftest import tiny_config


def test_default_is_the_library_default():
    c = ijepa.Config()
    assert (c.image_size, c.patch_size, c.in_chans) == (224, 16, 3)
    assert (c.embed_dim, c.depth, c.num_heads) == (192, 12, 3)
    assert (c.pred_embed_dim, c.pred_depth) == (384, 6)
    assert c.enc_mask_scale == (0.85, 1.0) and c.pred_mask_scale == (0.15, 0.2)
    assert c.aspect_ratio == (0.75, 1.5)
    assert (c.start_lr, c.lr, c.final_lr) == (2e-4, 1e-3, 1e-6)
    assert (c.weight_decay, c.final_weight_decay, c.ema_start, c.ema_end) == (0.04, 0.4, 0.996, 1.0)
    assert c.allow_overlap is False and c.full_grid is False and c.ragged_context is False
    assert c.num_patches == 196


@pytest.mark.parametrize("name,embed,patch", [("vit_tiny", 192, 16), ("vit_small", 384, 16),
                                              ("vit_base", 768, 16), ("vit_large", 1024, 16),
                                              ("vit_huge", 1280, 14), ("vit_giant", 1408, 16)])
def test_presets(name, embed, patch):
    c = ijepa.Config.preset(name)
    assert (c.embed_dim, c.patch_size) == (embed, patch)
    assert name in ijepa.PRESETS


def test_preset_overrides_and_unknown_names():
    c = ijepa.Config.preset("vit_small", lr=5e-4, seed=2**64 - 1, enc_mask_scale=[0.8, 0.9])
    assert c.lr == 5e-4 and c.seed == 2**64 - 1 and c.enc_mask_scale == (0.8, 0.9)
    with pytest.raises(ijepa.InvalidArgumentError, match="unknown config field 'embedding_dim'"):
        ijepa.Config.preset("vit_small", embedding_dim=3)
    with pytest.raises(ijepa.InvalidArgumentError, match="unknown preset"):
        ijepa.Config.preset("vit_enormous")
    c = ijepa.Config()
    with pytest.raises(AttributeError):
        c.no_such_field  # noqa: B018
    with pytest.raises(ijepa.InvalidArgumentError):
        c.no_such_field = 1


@pytest.mark.parametrize("field,value", [
    ("embed_dim", 1.5), ("embed_dim", "64"), ("embed_dim", True), ("embed_dim", 2**31),
    ("seed", -1), ("seed", 2**64), ("warmup_steps", 2**63), ("lr", "fast"), ("lr", 1e39),
    ("allow_overlap", 2), ("enc_mask_scale", 0.5), ("enc_mask_scale", (0.1, 0.2, 0.3)),
    ("aspect_ratio", ("a", 1.0)), ("n_threads", None), ("ragged_context", 2),
])
def test_wrong_types_and_ranges_are_refused(field, value):
    c = ijepa.Config()
    with pytest.raises(ijepa.InvalidArgumentError, match=field):
        setattr(c, field, value)
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.Config(**{field: value})


def test_update_is_all_or_nothing():
    c = ijepa.Config()
    with pytest.raises(ijepa.InvalidArgumentError):
        c.update(embed_dim=64, depth="x")
    assert c.embed_dim == 192


def test_numpy_scalars_accepted():
    c = ijepa.Config(embed_dim=np.int64(64), lr=np.float32(0.5), allow_overlap=np.bool_(True))
    assert c.embed_dim == 64 and c.lr == 0.5 and c.allow_overlap is True


def test_c_round_trip_and_copies():
    c = tiny_config(allow_overlap=True, full_grid=True, seed=123456789012345, mlp_ratio=2.5,
                    pred_num_heads=4, aspect_ratio=(0.5, 2.0), ragged_context=True)
    assert ijepa.Config.from_c(c.to_c()) == c and c.to_c().ragged_context == 1
    assert c.to_c().struct_size == ijepa._lib.ctypes.sizeof(ijepa._lib.ijepa_config)
    d = c.replace(depth=3)
    assert d.depth == 3 and c.depth == 1
    assert ijepa.Config.from_dict(c.to_dict()) == c
    assert pickle.loads(pickle.dumps(c)) == c
    assert "embed_dim=32" in repr(c)


def test_model_reports_its_config():
    c = tiny_config(allow_overlap=True, full_grid=True, seed=2**63 + 5, mlp_ratio=2.5,
                    pred_num_heads=4, enc_mask_scale=(0.7, 0.9))
    with ijepa.Model(c) as m:
        assert m.config == c
        assert m.num_patches == 36 and m.embed_dim == 32
        m.n_threads = 2
        assert m.n_threads == 2 and m.config.n_threads == 2


@pytest.mark.parametrize("bad", [
    dict(embed_dim=30), dict(embed_dim=-32), dict(patch_size=5), dict(image_size=0),
    dict(num_heads=3), dict(min_keep=36), dict(lr=-1.0), dict(ema_start=1.5),
    dict(total_steps=0), dict(warmup_steps=100), dict(mlp_ratio=float("nan")),
    dict(enc_mask_scale=(0.9, 0.1)), dict(pred_mask_scale=(0.1, 1.5)), dict(in_chans=0),
    dict(n_threads=5000),
])
def test_bad_config_values_raise(bad):
    with pytest.raises(ijepa.InvalidArgumentError, match="config"):
        ijepa.Model(tiny_config(**bad))


def test_model_constructor_forms():
    with ijepa.Model("tiny32", depth=1, pred_depth=1, n_threads=1) as m:
        assert m.config.image_size == 32 and m.config.depth == 1
    with ijepa.Model(tiny_config(), seed=9) as m:
        assert m.config.seed == 9
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.Model(42)
