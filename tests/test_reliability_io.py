"""Outputs colleagues can read, and a full disk that says so (issue 12, items 5 and 6).

The atomic-write helpers create their temporary file or directory with mkstemp / mkdtemp (0600 /
0700); what they rename into place must have the mode a plain write gives under the umask. A
checkpoint that runs out of space must say "no space left on device while writing <path>" and
leave the previous checkpoint in place: simulated (torch.save's own error text, ENOSPC from
save_pretrained and from a JSON write) and, where the test may mount one, on a real tiny tmpfs.
"""

from __future__ import annotations

import errno
import gc
import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from maskdiff.io import DiskFullError, atomic_dir, atomic_path, write_json, write_jsonl, write_text
from maskdiff.models import TinyModelSpec, build_tiny_model
from maskdiff.train import checkpoint as checkpoint_module
from maskdiff.train.checkpoint import read_progress, save_checkpoint

TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_outputs_follow_the_umask(tmp_path, umask):
    write_json(tmp_path / "a.json", {"x": 1})
    write_jsonl(tmp_path / "b.jsonl", [{"x": 1}])
    write_text(tmp_path / "c.txt", "x")
    with atomic_path(tmp_path / "d.bin") as tmp:
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a normal write gives, for comparison
    os.mkdir(tmp_path / "plain-dir")
    assert _mode(plain) == 0o666 & ~umask and _mode(tmp_path / "plain-dir") == 0o777 & ~umask
    for name in ("a.json", "b.jsonl", "c.txt", "d.bin"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    assert _mode(tmp_path / "model") == 0o777 & ~umask
    assert _mode(tmp_path / "model" / "config.json") == 0o666 & ~umask


def _tiny(hidden: int = 8):
    spec = TinyModelSpec(hidden_size=hidden, num_layers=1, num_heads=2, intermediate_size=2 * hidden, max_positions=16)
    model = build_tiny_model(spec, 40, {"mask": 39, "pad": 0, "eos": 1}, seed=0)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 4, dtype=torch.long)).logits.sum().backward()
    optimizer.step()
    return model, optimizer


def _assert_previous_checkpoint_kept(ckpt: Path) -> None:
    assert read_progress(ckpt) == {"step": 1}
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "trainer_state.pt").is_file()
    assert [p.name for p in ckpt.parent.iterdir() if p.name.startswith(".")] == [], "no temporary left behind"


def test_torch_save_out_of_space_is_reported_and_the_old_checkpoint_kept(tmp_path, monkeypatch):
    model, optimizer = _tiny()
    ckpt = tmp_path / "ck"
    save_checkpoint(ckpt, model, optimizer, None, {"step": 1})

    def full(*args, **kwargs):
        raise RuntimeError(TORCH_DISK_FULL)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(ckpt, model, optimizer, None, {"step": 2})
    assert str(info.value).startswith(f"no space left on device while writing {ckpt / 'trainer_state.pt'}")
    assert info.value.errno == errno.ENOSPC and "inline_container" in str(info.value.__cause__)
    _assert_previous_checkpoint_kept(ckpt)


def test_enospc_from_save_pretrained_and_json_is_reported(tmp_path, monkeypatch):
    model, optimizer = _tiny()
    ckpt = tmp_path / "ck"
    save_checkpoint(ckpt, model, optimizer, None, {"step": 1})

    def full_save_pretrained(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(type(model), "save_pretrained", full_save_pretrained)
        with pytest.raises(DiskFullError, match=f"^no space left on device while writing {ckpt / 'model.safetensors'}"):
            save_checkpoint(ckpt, model, optimizer, None, {"step": 2})
    _assert_previous_checkpoint_kept(ckpt)

    def full_json(path, obj):
        with atomic_path(path) as tmp:  # the write fails inside the helper, as on a real full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(checkpoint_module, "write_json", full_json)
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {ckpt / 'progress.json'}"):
        save_checkpoint(ckpt, model, optimizer, None, {"step": 2})
    _assert_previous_checkpoint_kept(ckpt)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        gc.collect()  # a failed writer kept alive by a traceback may still hold a file open there
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_real_full_disk(tiny_tmpfs):
    """One checkpoint (~48 KiB in pages) fits, a second cannot be written beside it."""
    model, optimizer = _tiny()
    ckpt = tiny_tmpfs / "ck"
    save_checkpoint(ckpt, model, optimizer, None, {"step": 1})
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {ckpt}/"):
        save_checkpoint(ckpt, model, optimizer, None, {"step": 2})
    _assert_previous_checkpoint_kept(ckpt)
    filler = tiny_tmpfs / "filler"
    with pytest.raises(OSError):
        filler.write_bytes(b"x" * 65536)  # fill what is left
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {tiny_tmpfs / 'stats.json'}$"):
        write_json(tiny_tmpfs / "stats.json", {"x": "y" * 20000})
    assert not (tiny_tmpfs / "stats.json").exists()
    assert not [p for p in tiny_tmpfs.iterdir() if p.name.startswith(".stats.json")]
