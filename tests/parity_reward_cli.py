"""``maskdiff`` CLI for multi-process trainer tests launched as a script (``accelerate launch
tests/parity_reward_cli.py train-mdpo ...``):

* the reward is one a random model earns half the time (odd completion length), so group
  advantages, and the gradients the ranks synchronise, are non-zero;
* with ``MASKDIFF_TEST_DIE_AFTER_UPDATE=n`` every rank raises right after update n (after that
  update's checkpoint, if one was due), to test resuming a killed multi-process job;
* DeepSpeed's shared-memory all-reduce for CPUs (a C++ op built just in time, ~90 s here) is left
  out: the tests run one DeepSpeed process, which does not use it.
"""

import importlib
import os
import sys

import numpy as np

import maskdiff.train.groups as groups
from maskdiff.cli import main



def parity_reward(kind, texts, refs, processes=0, cache=None, **kwargs):
    return np.array([float(len(t) % 2) for t in texts], dtype=np.float32)


def die_after(update: int) -> None:
    module = importlib.import_module("maskdiff.train.trainer")  # the update loop of every trainer
    real = module.end_of_update

    def end_then_die(setup, eval_sets, cfg, done, seed):
        real(setup, eval_sets, cfg, done, seed)
        if done == update:
            raise SystemExit(f"killed after update {update} (test)")

    module.end_of_update = end_then_die


def skip_deepspeed_shm_op() -> None:
    try:
        # import_module: ``import deepspeed.comm.torch as m`` would bind the ``torch`` package that
        # deepspeed.comm imports under the same name.
        ds_comm = importlib.import_module("deepspeed.comm.torch")
    except ImportError:
        return
    ds_comm.build_shm_op = lambda: None


if __name__ == "__main__":
    groups.score_completions = parity_reward
    skip_deepspeed_shm_op()
    if os.environ.get("MASKDIFF_TEST_DIE_AFTER_UPDATE"):
        die_after(int(os.environ["MASKDIFF_TEST_DIE_AFTER_UPDATE"]))
    sys.exit(main(sys.argv[1:]))
