"""Orchestration: where every output lives (:mod:`.layout`, which imports nothing of maskdiff, so
the trainers and the report code may write and read by it), which jobs a preset's DAG holds
(:mod:`.jobs`), the workflow's model names (:mod:`.models`) and the settings each trains with
(:mod:`.trainer_settings`), which library code each stage runs (:mod:`.code_deps`), and the DVC
stages (:mod:`.dvc_yaml`, :mod:`.dvc_share`). The Snakefile rules import these."""
