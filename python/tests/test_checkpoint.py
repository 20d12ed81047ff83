"""save / Model.load / load_weights: round trips, exact resume, and errors."""

import json
import os

import numpy as np
import pytest

import ijepa
from conftest import images_for
from st_reader import read_safetensors


def _state(m, buffers=("params", "target", "adam_m", "adam_v")):
    return {k: m.flat_buffer(k).copy() for k in buffers}


def test_save_load_round_trip(model, cfg, tmp_path):
    x = images_for(cfg, 2)
    model.train_step(x)
    path = tmp_path / "w.safetensors"
    model.save(path)
    with ijepa.Model.load(str(path)) as m2:
        assert m2.config == model.config
        assert m2.step == 0  # weights only: no training state
        for k in ("params", "target"):
            assert np.array_equal(m2.flat_buffer(k), model.flat_buffer(k)), k
        assert not m2.flat_buffer("adam_m").any()
        for enc in ("target", "context"):
            assert np.array_equal(m2.encode(x, enc, pooled=False), model.encode(x, enc, pooled=False))
    # the file has official names and the config metadata
    t, meta = read_safetensors(path)
    assert meta["ijepa.contents"] == "weights"
    c = json.loads(meta["ijepa.config"])
    assert c["embed_dim"] == 32 and c["seed"] == "5"
    names = set(t)
    assert {"encoder.pos_embed", "target_encoder.pos_embed", "predictor.predictor_pos_embed"} <= names
    assert set(model.parameters()) | set(model.target_parameters()) <= names
    for k, v in model.parameters().items():
        assert np.array_equal(t[k].reshape(v.shape), v)


def test_load_weights_into_existing_model(model, cfg, tmp_path):
    x = images_for(cfg, 2)
    model.train_step(x)
    path = tmp_path / "w.safetensors"
    model.save(path)
    with ijepa.Model(cfg.replace(seed=99)) as other:
        assert not np.array_equal(other.flat_buffer("params"), model.flat_buffer("params"))
        other.load_weights(path)
        assert np.array_equal(other.flat_buffer("params"), model.flat_buffer("params"))
        assert np.array_equal(other.flat_buffer("target"), model.flat_buffer("target"))
        assert np.array_equal(other.encode(x), model.encode(x))


def test_training_state_resume_is_bit_exact(cfg, tmp_path):
    n, k = 5, 2
    x = [images_for(cfg, 3, seed=s) for s in range(n)]
    with ijepa.Model(cfg) as straight:
        losses = [straight.train_step(x[i]).loss for i in range(n)]
        final = _state(straight)
        masks_after = straight.sample_masks(3)
    with ijepa.Model(cfg) as first:
        part = [first.train_step(x[i]).loss for i in range(k)]
        first.set_schedule_override(ema_momentum=0.99)  # overrides are part of the state...
        first.set_schedule_override()                   # ...and so is clearing them
        path = tmp_path / "state.safetensors"
        first.save(path, training_state=True)
    with ijepa.Model.load(path, n_threads=2) as other:
        assert other.step == k and other.n_threads == 2   # the thread count is the caller's choice
    # (bit for bit needs the same thread count: per-thread partial sums, e.g. of the weight
    # gradients, are added in thread order, deterministic for a given count)
    with ijepa.Model.load(path, n_threads=cfg.n_threads) as resumed:
        assert resumed.step == k
        part += [resumed.train_step(x[i]).loss for i in range(k, n)]
        assert resumed.step == n
        got = _state(resumed)
        assert resumed.sample_masks(3) == masks_after
    assert part == losses
    for key in final:
        assert np.array_equal(got[key], final[key]), key


def test_overrides_survive_a_resume(cfg, tmp_path):
    x = images_for(cfg, 2)
    with ijepa.Model(cfg) as m:
        m.set_schedule_override(lr=0.125, weight_decay=0.5, ema_momentum=0.25)
        m.train_step(x)
        m.save(tmp_path / "s", training_state=True)
        want = m.train_step(x)
    with ijepa.Model.load(tmp_path / "s") as r:
        got = r.train_step(x)
    assert got == want and (got.lr, got.weight_decay, got.ema_momentum) == (0.125, 0.5, 0.25)


def test_load_errors(model, cfg, tmp_path):
    with pytest.raises(ijepa.IjepaIOError) as e:
        ijepa.Model.load(tmp_path / "missing.safetensors")
    assert e.value.status == -4 and "missing.safetensors" in str(e.value)
    with pytest.raises(ijepa.IjepaIOError):
        model.load_weights(tmp_path)  # a directory
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ijepa.FormatError):
        ijepa.Model.load(junk)
    with pytest.raises(ijepa.FormatError):
        model.load_weights(junk)
    for bad in ("", b"", 3, None):
        with pytest.raises(ijepa.InvalidArgumentError):
            model.load_weights(bad)
    with pytest.raises(ijepa.InvalidArgumentError):
        model.save("a\0b")
    with pytest.raises(ijepa.IjepaIOError):
        model.save(tmp_path / "no" / "such" / "dir.safetensors")


def test_truncated_checkpoint(model, tmp_path):
    path = tmp_path / "w.safetensors"
    model.save(path)
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        p = tmp_path / ("cut%d" % cut)
        p.write_bytes(data[:cut])
        with pytest.raises(ijepa.FormatError):
            ijepa.Model.load(p)
        with pytest.raises(ijepa.FormatError):
            model.load_weights(p)


def test_load_weights_mismatch_leaves_model_unchanged(model, cfg, tmp_path):
    path = tmp_path / "big.safetensors"
    with ijepa.Model(cfg.replace(embed_dim=64)) as big:
        big.save(path)
    before = _state(model)
    with pytest.raises(ijepa.FormatError, match="shape"):
        model.load_weights(path)
    with pytest.raises(ijepa.FormatError):
        model.load_weights(path, strict=False)
    for k, v in before.items():
        assert np.array_equal(model.flat_buffer(k), v)


def test_strict_and_non_strict(model, cfg, tmp_path):
    """A file with only the encoder: strict refuses (naming what is missing), non-strict
    loads the encoder and leaves the rest as it was."""
    src = tmp_path / "w.safetensors"
    with ijepa.Model(cfg.replace(seed=42)) as other:
        other.save(src)
        enc_only = {k: v for k, v in other.parameters().items() if k.startswith("encoder.")}
    t, _ = read_safetensors(src)
    partial = tmp_path / "enc.safetensors"
    _write_safetensors(partial, {k: v for k, v in t.items() if k.startswith("encoder.")})
    before = _state(model)
    with pytest.raises(ijepa.FormatError, match="missing"):
        model.load_weights(partial)
    assert np.array_equal(model.flat_buffer("params"), before["params"])
    model.load_weights(partial, strict=False)
    p = model.parameters()
    for k, v in enc_only.items():
        assert np.array_equal(p[k], v)
    n_enc = sum(v.size for v in enc_only.values())
    assert np.array_equal(model.flat_buffer("params")[n_enc:], before["params"][n_enc:])  # predictor
    assert np.array_equal(model.flat_buffer("target"), before["target"])
    # unexpected names are refused in strict mode
    extra = tmp_path / "extra.safetensors"
    t["encoder.something_else"] = np.zeros(3, np.float32)
    _write_safetensors(extra, t)
    with pytest.raises(ijepa.FormatError, match="unexpected"):
        model.load_weights(extra)
    model.load_weights(extra, strict=False)


def test_ddp_module_prefix_accepted(model, cfg, tmp_path):
    src = tmp_path / "w.safetensors"
    with ijepa.Model(cfg.replace(seed=8)) as other:
        other.save(src)
        want = other.flat_buffer("params").copy()
    t, _ = read_safetensors(src)
    ddp = {k.split(".", 1)[0] + ".module." + k.split(".", 1)[1]: v for k, v in t.items()}
    p = tmp_path / "ddp.safetensors"
    _write_safetensors(p, ddp)
    model.load_weights(p)
    assert np.array_equal(model.flat_buffer("params"), want)


def test_nan_in_checkpoint_refused(model, tmp_path):
    src = tmp_path / "w.safetensors"
    model.save(src)
    t, meta = read_safetensors(src)
    t["encoder.norm.weight"][3] = np.nan
    p = tmp_path / "nan.safetensors"
    _write_safetensors(p, t, meta)
    before = _state(model)
    with pytest.raises(ijepa.NumericError):
        model.load_weights(p)
    with pytest.raises(ijepa.NumericError):
        ijepa.Model.load(p)
    assert np.array_equal(model.flat_buffer("params"), before["params"])


def _write_safetensors(path, tensors, metadata=None):
    """Minimal writer (F32 only) for the tests."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    assert os.path.getsize(path) == 8 + len(h) + off
