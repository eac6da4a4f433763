"""Checkpoints: round trip, atomic replacement, one-line errors for broken files, and
safetensors interop with the `safetensors` package (our writer <-> their reader and back)."""
import json
import os
import struct

import numpy as np
import pytest

from minillm.common import UserError
from minillm.nn import checkpoint as ckpt
from minillm.nn.checkpoint import (load_checkpoint, load_safetensors, load_training_state,
                                   read_safetensors_header, save_checkpoint, save_safetensors)
from minillm.nn.gpt import GPTConfig, init_params
from minillm.nn.optim import AdamW

CONFIG = GPTConfig(vocab_size=37, context_len=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=24,
                   hidden_dim=40)


def _save(path, config=CONFIG, **kw):
    params = init_params(config, seed=3)
    save_checkpoint(path, config, params, meta={"stage": "base", "step": 7, "tokens_seen": 700}, **kw)
    return params


def _load_fails(path, *words):
    """load_checkpoint(path) raises a one-line UserError that contains every word."""
    with pytest.raises(UserError) as excinfo:
        load_checkpoint(path)
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("tied", [False, True])
def test_round_trip(tmp_path, tied):
    config = GPTConfig(**{**CONFIG.__dict__, "tie_embeddings": tied})
    params = _save(tmp_path / "ck", config)
    loaded_config, loaded, meta = load_checkpoint(tmp_path / "ck")
    assert loaded_config == config
    assert list(loaded) == list(params) and ("lm_head" in loaded) == (not tied)
    for name, a in params.items():
        assert loaded[name].dtype == np.float32 and loaded[name].flags.writeable
        np.testing.assert_array_equal(loaded[name], a)
    assert meta["format"] == "minillm-checkpoint" and meta["version"] == 1
    assert (meta["stage"], meta["step"], meta["tokens_seen"]) == ("base", 7, 700)
    assert meta["model"]["n_kv_head"] == 2
    assert sorted(os.listdir(tmp_path)) == ["ck"]          # no temporary directory left


def test_training_state_round_trip(tmp_path):
    params = init_params(CONFIG, seed=0)
    opt = AdamW(params, weight_decay=0.1)
    rng = np.random.default_rng(0)
    opt.step(1e-3, grads={n: rng.standard_normal(a.shape).astype(np.float32) for n, a in params.items()})
    trainer = {"step": 1, "loader": {"epoch": 0, "pos": 12}, "rng": {"seed": 5}}
    save_checkpoint(tmp_path / "ck", CONFIG, params, optimizer_state=opt.state(), trainer_state=trainer)
    (tensors, scalars), trainer2 = load_training_state(tmp_path / "ck")
    assert trainer2 == trainer and scalars["t"] == 1 and scalars["betas"] == [0.9, 0.95]
    for name, m in opt.m.items():
        np.testing.assert_array_equal(tensors[f"m.{name}"], m)
        np.testing.assert_array_equal(tensors[f"v.{name}"], opt.v[name])
    assert load_training_state(_bare(tmp_path)) == (None, None)


def _bare(tmp_path):
    _save(tmp_path / "bare")
    return tmp_path / "bare"


def test_tokenizer_is_saved(tmp_path):
    class FakeTokenizer:
        def save(self, path):
            with open(path, "w") as f:
                json.dump({"vocab_size": 37}, f)

    _save(tmp_path / "ck", tokenizer=FakeTokenizer())
    assert json.loads((tmp_path / "ck" / "tokenizer.json").read_text()) == {"vocab_size": 37}


def test_save_replaces_atomically_and_a_failed_save_keeps_the_old(tmp_path, monkeypatch):
    first = _save(tmp_path / "ck")
    config2 = GPTConfig(**{**CONFIG.__dict__, "n_embd": 32})
    _save(tmp_path / "ck", config2)                        # replace: works, old copy removed
    assert load_checkpoint(tmp_path / "ck")[0] == config2
    assert sorted(os.listdir(tmp_path)) == ["ck"]

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "write_json", boom)          # dies before config.json is written
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck", CONFIG, first)
    assert load_checkpoint(tmp_path / "ck")[0] == config2  # the previous one, intact
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_interrupted_swap_names_the_surviving_copy(tmp_path):
    _save(tmp_path / "ck")
    os.makedirs(tmp_path / ".ck.old-abc")
    os.replace(tmp_path / "ck", tmp_path / ".ck.old-abc" / "ckpt")   # died between renames
    _load_fails(tmp_path / "ck", ".ck.old-abc", "move it")


def test_missing_or_incomplete_checkpoint(tmp_path):
    _load_fails(tmp_path / "nope", "not found")
    (tmp_path / "half").mkdir()
    _load_fails(tmp_path / "half", "not a complete checkpoint")


def test_truncated_weights(tmp_path):
    _save(tmp_path / "ck")
    f = tmp_path / "ck" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    _load_fails(tmp_path / "ck", "truncated")
    f.write_bytes(data[:5])
    _load_fails(tmp_path / "ck", "truncated")


def test_corrupt_header_and_config(tmp_path):
    _save(tmp_path / "ck")
    f = tmp_path / "ck" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:20] = b"\xff" * 12                              # garbage inside the JSON header
    f.write_bytes(bytes(data))
    _load_fails(tmp_path / "ck", "corrupt")
    f.write_bytes(struct.pack("<Q", 10 ** 12) + bytes(data[8:]))   # absurd header length
    _load_fails(tmp_path / "ck", "not a safetensors file")
    _save(tmp_path / "ck2")
    (tmp_path / "ck2" / "config.json").write_text('{"format": "minillm-checkpoint", "vers')
    _load_fails(tmp_path / "ck2", "not valid JSON")


def test_weights_that_do_not_match_the_config(tmp_path):
    _save(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["hidden_dim"] = 48
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    _load_fails(tmp_path / "ck", "w_gate", "(48, 24)")
    cfg["model"]["hidden_dim"], cfg["model"]["n_layer"] = 40, 3
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    _load_fails(tmp_path / "ck", "missing", "blocks.2.")


# ---- safetensors layout and interop -----------------------------------------------------

def _tensors(rng):
    return {"a": rng.standard_normal((3, 5)).astype(np.float32),
            "b.c": rng.standard_normal(7).astype(np.float32),
            "half": rng.standard_normal((2, 3)).astype(np.float16),
            "ids": rng.integers(-5, 5, (4,)).astype(np.int64),
            "scalar": np.array(2.5, dtype=np.float32),
            "empty": np.zeros((0, 4), np.float32)}


def test_layout_by_hand(tmp_path):
    save_safetensors(tmp_path / "t.safetensors", {"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
                     {"who": "minillm"})
    raw = (tmp_path / "t.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header == {"__metadata__": {"who": "minillm"},
                      "x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    assert raw[8 + n:] == np.arange(6, dtype="<f4").tobytes()
    assert read_safetensors_header(tmp_path / "t.safetensors")[1] == {"who": "minillm"}


def test_package_reads_our_files(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy", reason="interop needs the safetensors package")
    from safetensors import safe_open
    tensors = _tensors(rng)
    save_safetensors(tmp_path / "ours.safetensors", tensors, {"format": "pt"})
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(tensors)
    for name, a in tensors.items():
        assert theirs[name].dtype == a.dtype and theirs[name].shape == a.shape
        np.testing.assert_array_equal(theirs[name], a)
    with safe_open(str(tmp_path / "ours.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}


def test_we_read_package_files(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy", reason="interop needs the safetensors package")
    tensors = _tensors(rng)
    st.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata={"k": "v"})
    ours = load_safetensors(tmp_path / "theirs.safetensors", widen=False)
    for name, a in tensors.items():
        assert ours[name].dtype == a.dtype, name
        np.testing.assert_array_equal(ours[name], a)
    widened = load_safetensors(tmp_path / "theirs.safetensors")
    assert widened["half"].dtype == np.float32
    np.testing.assert_array_equal(widened["half"], tensors["half"].astype(np.float32))


def test_we_read_bf16_from_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="bf16 files are made with torch (test extra)")
    st = pytest.importorskip("safetensors.torch", reason="interop needs the safetensors package")
    x = torch.randn(5, 9, generator=torch.Generator().manual_seed(0)) * 100
    st.save_file({"w": x.to(torch.bfloat16), "f": x}, str(tmp_path / "bf.safetensors"))
    ours = load_safetensors(tmp_path / "bf.safetensors")
    assert ours["w"].dtype == np.float32
    np.testing.assert_array_equal(ours["w"], x.to(torch.bfloat16).float().numpy())   # exact
    np.testing.assert_array_equal(ours["f"], x.numpy())
    assert not np.array_equal(ours["w"], x.numpy())        # bf16 really did round
