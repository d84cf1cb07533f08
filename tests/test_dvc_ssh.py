"""A real SSH DVC remote, the way the lab shares artifacts between the cluster and a laptop.

A private OpenSSH server (``sshd -D``) runs on 127.0.0.1 at a free high port with its own host key,
config file and a key pair generated for the test, all in a temp dir: the system's sshd config and
root's ~/.ssh are never read or written (every DVC/git call runs with HOME set to a temp dir).
`tests/ssh/install_sshd.sh` installs Debian's openssh-server when sshd is missing.

Then: a temp git repo ("cluster") `dvc add`s a small dataset and a fake checkpoint directory, pushes
them to ``ssh://root@127.0.0.1:<port>/<tmp>/store`` (URL committed in .dvc/config, keyfile only in
the untracked .dvc/config.local), a fresh ``git clone`` ("laptop") sets its own keyfile, pulls, and
gets identical bytes; a modified file then pushes only its own object and the new directory listing.

dvc-ssh notes (4.3.0 / sshfs / asyncssh 2.24): there is no known_hosts remote option (the config
schema rejects it) and none is needed: sshfs connects with ``known_hosts=None``, i.e. the server's
host key is never checked (test_dvc_ssh_does_not_check_host_keys pins this down). Only SFTP is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from workflow_helpers import BIN, free_port

pytestmark = pytest.mark.slow

INSTALL_SCRIPT = Path(__file__).resolve().parent / "ssh" / "install_sshd.sh"
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "-c", "init.defaultBranch=main"]
DVC = str(BIN / "dvc")
IN_SYNC = "Cache and remote 'lab' are in sync."


@dataclass
class SshServer:
    port: int
    client_key: Path  # private key whose public half is the server's only authorized key
    host_public_key: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# --------------------------------------------------------------------------- private sshd


def _find_sshd() -> str | None:
    for cand in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=60)
    path.chmod(0o600)
    return path.with_name(path.name + ".pub").read_text().strip()


def _sshd_config(d: Path, port: int) -> Path:
    # StrictModes stays on. It rejects key files below a group/world-writable directory such as
    # /tmp, so the authorized key is served by AuthorizedKeysCommand (a root-owned /usr/bin/cat
    # whose argument sshd does not check) instead of AuthorizedKeysFile.
    cat = os.path.realpath(shutil.which("cat") or "/bin/cat")
    cfg = d / "sshd_config"
    cfg.write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {d / 'ssh_host_ed25519_key'}
PidFile {d / 'sshd.pid'}
StrictModes yes
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile none
AuthorizedKeysCommand {cat} {d / 'authorized_keys'}
AuthorizedKeysCommandUser root
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
    cfg.chmod(0o600)
    return cfg


def _check_config(sshd: str, cfg: Path) -> None:
    """`sshd -t`; creates the compiled-in privilege separation dir (Debian: /run/sshd) if missing."""
    for _ in range(2):
        proc = subprocess.run([sshd, "-t", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        if proc.returncode == 0:
            return
        missing = re.search(r"Missing privilege separation directory: (\S+)", proc.stderr)
        if not missing:
            break
        Path(missing.group(1)).mkdir(mode=0o755, parents=True, exist_ok=True)
    pytest.skip(f"sshd rejects the test config: {proc.stderr.strip()[-1000:]}")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: the private sshd logs the test in as root@127.0.0.1 (and may apt-get install it)")
    binary = _find_sshd()
    if binary is None:
        proc = subprocess.run(["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
        binary = _find_sshd()
        if binary is None:
            pytest.skip(f"sshd is not installed and {INSTALL_SCRIPT.name} failed ({proc.returncode}): "
                        f"{(proc.stdout + proc.stderr).strip()[-1500:]}")

    d = tmp_path_factory.mktemp("sshd")
    d.chmod(0o700)
    host_pub = _keygen(d / "ssh_host_ed25519_key", "maskdiff-test-host")
    client_pub = _keygen(d / "client_key", "maskdiff-test-client")
    # The key may only open SFTP/exec sessions from localhost: no forwarding, no pty.
    (d / "authorized_keys").write_text(f'restrict,from="127.0.0.1" {client_pub}\n')
    (d / "authorized_keys").chmod(0o600)

    log = d / "sshd.log"
    proc = None
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        cfg = _sshd_config(d, port)
        _check_config(binary, cfg)
        log.write_text("")
        # -D: stay in the foreground as our child; -E: log to a file (not syslog)
        proc = subprocess.Popen([binary, "-D", "-f", str(cfg), "-E", str(log)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if f"Server listening on 127.0.0.1 port {port}" in log.read_text(errors="replace"):
                break
            time.sleep(0.1)
        if proc.poll() is None and "Server listening" in log.read_text(errors="replace"):
            break
        _stop(proc)
        if "Address already in use" not in log.read_text(errors="replace"):
            pytest.skip(f"private sshd did not start: {log.read_text(errors='replace').strip()[-1500:]}")
    else:
        pytest.skip(f"private sshd could not bind a free port: {log.read_text(errors='replace')[-1500:]}")

    try:
        yield SshServer(port=port, client_key=d / "client_key", host_public_key=host_pub, log=log)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to our sshd's PID only
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- helpers


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["HOME"] = str(home)  # asyncssh reads ~/.ssh/config and default keys; git/dvc read global config
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "XDG_CONFIG_HOME", "DVC_GLOBAL_CONFIG_DIR"):
        env.pop(var, None)
    return env


def _run(cmd: list[str], cwd: Path, home: Path, check: bool = True, timeout: int = 300):
    # stdin closed and no controlling terminal: a credential prompt fails instead of hanging.
    proc = subprocess.run(cmd, cwd=cwd, env=_env(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, start_new_session=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _objects(root: Path) -> set[str]:
    """Content-addressed objects under <cache or remote>/files/md5, as '<md5>[.dir]'."""
    base = root / "files" / "md5"
    return {p.parent.name + p.name for p in base.glob("*/*") if p.is_file()} if base.is_dir() else set()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_dataset(d: Path) -> None:
    d.mkdir(parents=True)
    rows = [{"numbers": [i, i + 3, 7], "target": 2 * i + 10} for i in range(40)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    (d / "README.txt").write_text("tiny Countdown-style split for the DVC SSH remote test\n")


def _make_checkpoint(d: Path) -> None:
    """A fake HF checkpoint dir; model.safetensors has the real layout (u64 header length, JSON, raw tensor)."""
    d.mkdir(parents=True)
    raw = hashlib.shake_256(b"maskdiff-test-weights").digest(64 * 1024)  # 16384 deterministic "f32" values
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "lm_head.weight": {"dtype": "F32", "shape": [128, 128], "data_offsets": [0, len(raw)]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + raw)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 128, "vocab_size": 128}))
    (d / "trainer_state.json").write_text(json.dumps({"step": 100, "loss": 1.2345}))


def _user_ssh_dir_state() -> dict[str, int] | None:
    """The real user's ~/.ssh (name -> mtime), to show the test leaves it alone."""
    d = Path(os.path.expanduser("~")) / ".ssh"
    return {p.name: p.stat().st_mtime_ns for p in d.iterdir()} if d.is_dir() else None


def _dvc_out_hash(dvc_file: Path) -> str:
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


# --------------------------------------------------------------------------- tests


def test_dvc_ssh_push_fresh_clone_pull_round_trip(sshd, tmp_path):
    user_ssh_before = _user_ssh_dir_state()
    home = tmp_path / "home"
    home.mkdir()
    store = tmp_path / "store"
    url = f"ssh://root@127.0.0.1:{sshd.port}{store}"

    # ---- cluster side: track a dataset and a checkpoint, push them over SSH
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    _run([*GIT, "init", "-q"], cluster, home)
    _run([DVC, "init", "-q"], cluster, home)
    _make_dataset(cluster / "data/tiny")
    _make_checkpoint(cluster / "checkpoints/sft-step100")
    _run([DVC, "add", "-q", "data/tiny", "checkpoints/sft-step100"], cluster, home)
    _run([DVC, "remote", "add", "-d", "lab", url], cluster, home)
    _run([DVC, "remote", "modify", "--local", "lab", "keyfile", str(sshd.client_key)], cluster, home)
    _run([*GIT, "add", "-A"], cluster, home)
    _run([*GIT, "commit", "-q", "-m", "data + checkpoint"], cluster, home)

    tracked = _run(["git", "ls-files"], cluster, home).stdout.split()
    assert {"data/tiny.dvc", "checkpoints/sft-step100.dvc", ".dvc/config"} <= set(tracked), tracked
    assert not [t for t in tracked if t.startswith(("data/tiny/", "checkpoints/sft-step100/"))], tracked
    assert ".dvc/config.local" not in tracked, "the per-machine keyfile setting must stay out of git"
    assert str(sshd.client_key) not in (cluster / ".dvc/config").read_text()

    pushed = _run([DVC, "push"], cluster, home).stdout
    local_objects = _objects(cluster / ".dvc/cache")
    assert len(local_objects) == 8, local_objects  # 6 files + 2 directory listings
    assert _objects(store) == local_objects, pushed
    assert f"{len(local_objects)} files pushed" in pushed, pushed
    assert "Accepted publickey for root" in sshd.log_text(), sshd.log_text()[-2000:]
    assert IN_SYNC in _run([DVC, "status", "-c"], cluster, home).stdout

    # ---- laptop side: fresh clone; the remote URL comes from git, the key is set per machine
    laptop = tmp_path / "laptop"
    _run(["git", "clone", "-q", str(cluster), str(laptop)], tmp_path, home)
    assert not (laptop / "data/tiny").exists() and not (laptop / ".dvc/config.local").exists()
    denied = _run([DVC, "pull"], laptop, home, check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stdout + denied.stderr, denied
    _run([DVC, "remote", "modify", "--local", "lab", "keyfile", str(sshd.client_key)], laptop, home)
    _run([DVC, "remote", "modify", "--local", "lab", "verify", "true"], laptop, home)  # as the project's remote
    _run([DVC, "pull"], laptop, home)

    for out in ("data/tiny", "checkpoints/sft-step100"):
        got, want = _tree(laptop / out), _tree(cluster / out)
        assert sorted(got) == sorted(want), (out, sorted(got), sorted(want))
        for name in want:
            assert got[name] == want[name], f"{out}/{name}: pulled bytes differ from the pushed ones"
    assert IN_SYNC in _run([DVC, "status", "-c"], laptop, home).stdout
    assert "up to date" in _run([DVC, "status"], laptop, home).stdout

    # ---- a changed file pushes exactly its own object plus the new directory listing
    train = laptop / "data/tiny/train.jsonl"
    train.write_bytes(train.read_bytes() + b'{"numbers": [1, 2, 3], "target": 6}\n')
    _run([DVC, "add", "-q", "data/tiny"], laptop, home)
    status = _run([DVC, "status", "-c"], laptop, home).stdout
    assert IN_SYNC not in status and "new:" in status and "data/tiny/train.jsonl" in status, status
    assert "README.txt" not in status and "checkpoints" not in status, status

    before = _objects(store)
    pushed = _run([DVC, "push"], laptop, home).stdout
    added = _objects(store) - before
    expected = {hashlib.md5(train.read_bytes()).hexdigest(), _dvc_out_hash(laptop / "data/tiny.dvc")}
    assert added == expected, (added, expected, pushed)
    assert before <= _objects(store), "push never deletes remote objects"
    assert "2 files pushed" in pushed, pushed
    assert IN_SYNC in _run([DVC, "status", "-c"], laptop, home).stdout
    assert _user_ssh_dir_state() == user_ssh_before, "the test must not touch the real ~/.ssh"


def test_dvc_ssh_does_not_check_host_keys(sshd, tmp_path):
    """dvc-ssh 4.3.0 has no known_hosts option and passes known_hosts=None to asyncssh, so even a
    ~/.ssh/known_hosts that pins a *different* key for this server (with StrictHostKeyChecking yes
    in ~/.ssh/config) does not stop a push. If this starts failing, dvc-ssh began verifying host
    keys: document the new option in the README and set it in test_dvc_ssh_push_fresh_clone_pull_round_trip.
    """
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    wrong_pub = _keygen(tmp_path / "impostor_host_key", "not-the-server")
    assert wrong_pub.split()[1] != sshd.host_public_key.split()[1]
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {' '.join(wrong_pub.split()[:2])}\n")
    (home / ".ssh/config").write_text(
        f"Host 127.0.0.1\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {home / '.ssh/known_hosts'}\n")

    repo = tmp_path / "repo"
    repo.mkdir()
    _run([*GIT, "init", "-q"], repo, home)
    _run([DVC, "init", "-q"], repo, home)
    (repo / "notes.txt").write_text("host key check probe\n")
    _run([DVC, "add", "-q", "notes.txt"], repo, home)
    _run([DVC, "remote", "add", "-d", "lab", f"ssh://root@127.0.0.1:{sshd.port}{tmp_path / 'store'}"], repo, home)
    _run([DVC, "remote", "modify", "--local", "lab", "keyfile", str(sshd.client_key)], repo, home)
    rejected = _run([DVC, "remote", "modify", "--local", "lab", "known_hosts", str(home / ".ssh/known_hosts")],
                    repo, home, check=False)
    assert rejected.returncode != 0 and "known_hosts" in rejected.stderr, rejected
    pushed = _run([DVC, "push"], repo, home, check=False)
    assert pushed.returncode == 0 and "1 file pushed" in pushed.stdout, (
        f"dvc push refused a server whose host key is not the one in known_hosts: dvc-ssh now checks "
        f"host keys (good), update this test and the README:\n{pushed.stdout}\n{pushed.stderr}")
