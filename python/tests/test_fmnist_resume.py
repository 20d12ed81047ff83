"""examples/fmnist.py's pretrain loop cut into pieces (fmnist_eval.py --checkpoint-every/--resume):
a run stopped after a checkpoint and continued from it makes exactly the steps of one
uninterrupted run (same batches, crops, masks and updates)."""
import os
import pickle
import sys

import numpy as np
import pytest

import ijepa

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
sys.path.insert(0, EXAMPLES)
import fmnist as F  # noqa: E402


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(F, "BATCH", 8)


def config(steps, ragged):
    return F.recipe_config(steps, seed=3, n_threads=1, ragged=ragged).replace(
        embed_dim=48, depth=2, pred_embed_dim=24, pred_depth=1)


@pytest.mark.parametrize("ragged", [False, True])
def test_resume_equals_uninterrupted(tmp_path, small_batches, ragged):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 28, 28), dtype=np.float32)     # 5 batches per epoch: the order reshuffles
    steps = 9
    with ijepa.Model(config(steps, ragged)) as m:
        whole, _ = F.pretrain(m, x, steps, seed=1, log_every=0)
        want = m.flat_buffer("params").copy()
        want_target = m.flat_buffer("target").copy()

    saved = {}

    def checkpoint(state):
        path = str(tmp_path / f"m{state['step']}.safetensors")
        m2.save(path, training_state=True)
        saved[state["step"]] = (path, pickle.dumps(state))

    with ijepa.Model(config(steps, ragged)) as m2:
        F.pretrain(m2, x, steps, seed=1, log_every=0, checkpoint=checkpoint, checkpoint_every=4)
    assert sorted(saved) == [4, 8, 9]
    path, blob = saved[4]
    with ijepa.Model.load(path, n_threads=1) as m3:
        assert m3.step == 4
        losses, _ = F.pretrain(m3, x, steps, seed=1, log_every=0, resume=pickle.loads(blob))
        assert losses == whole
        np.testing.assert_array_equal(m3.flat_buffer("params"), want)
        np.testing.assert_array_equal(m3.flat_buffer("target"), want_target)


def test_resume_refuses_a_model_at_another_step(tmp_path, small_batches):
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    states = []
    with ijepa.Model(config(4, False)) as m:
        F.pretrain(m, x, 4, seed=1, log_every=0, checkpoint=lambda s: states.append(pickle.dumps(s)),
                   checkpoint_every=2)
    with ijepa.Model(config(4, False)) as fresh:
        with pytest.raises(ValueError, match="step 0 but the saved loop state at step 2"):
            F.pretrain(fresh, x, 4, seed=1, log_every=0, resume=pickle.loads(states[0]))
