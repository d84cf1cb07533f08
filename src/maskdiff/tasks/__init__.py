"""Tasks: seeded generators for the local presets and loaders for the paper's datasets.

Every problem is a plain dict record with at least ``id``, ``task``, ``prompt``, ``answer`` and
``solution`` (a reference completion for SFT/pretraining); Countdown records also carry
``numbers`` and ``target``. ``REWARD_KIND`` maps a task name to the reward that scores it.
"""

from ..errors import InputError

REWARD_KIND = {
    "countdown": "countdown",
    "arithmetic": "math",
    "math500": "math",
    "openr1": "math",
}


def reward_kind(task: str) -> str:
    try:
        return REWARD_KIND[task]
    except KeyError:
        raise InputError(f"unknown task {task!r}; known tasks: {sorted(REWARD_KIND)}") from None


def reference_of(record: dict) -> dict:
    """The part of a record a reward function needs (what the scorer caches on)."""
    if reward_kind(record["task"]) == "countdown":
        return {"numbers": list(record["numbers"]), "target": record["target"]}
    return {"answer": record["answer"]}
