"""math_reward from a user's script that has no ``if __name__ == "__main__":`` guard: the scoring
workers must not run the script again (multiprocessing's forkserver imports the parent's main
module in every child unless it is hidden; maskdiff.rewards.workers hides it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    marker = tmp_path / "ran.txt"
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from maskdiff.rewards import math_reward
        from maskdiff.rewards.workers import pool_stats

        with open({str(marker)!r}, "a") as fh:  # a side effect at import time
            fh.write("ran\\n")
        t0 = time.time()
        # Not integers or fractions: these go to the worker processes.
        scores = [math_reward(a, g) for a, g in (("\\\\sqrt{{4}}", "2"), ("x^2", "x^2"), ("\\\\pi", "3"))]
        print(scores, round(time.time() - t0, 2), pool_stats()['started'], pool_stats()['timeouts'])
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran\n", "the script ran again inside the scoring workers"
    scores, seconds, started, timeouts = done.stdout.split("]")[0] + "]", *done.stdout.split("]")[1].split()
    assert scores == "[1.0, 1.0, 0.0]" and int(started) >= 1 and int(timeouts) == 0, done.stdout
    assert "unavailable" not in done.stderr
