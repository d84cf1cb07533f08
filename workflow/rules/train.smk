# Stage 5: fine-tuning the base model: masked SFT, diffu-GRPO and MDPO (on the mined Answer
# Backslide set, and on all data for the ablation), all at the same number of gradient updates.
# Checkpoints live outside the declared output, so a killed job resumes where it stopped.


def trainer_settings(algorithm, variant=None):
    """The algorithm's config section plus what all trainers share (updates, evaluation cell)."""
    t, dec = config["training"], config["decoding"]
    shared = {
        "updates": t["updates"],
        "eval_every": t["eval_every"],
        "eval_problems": t["eval_problems"],
        "checkpoint_every": t["checkpoint_every"],
        "gen_length": dec["gen_length"],
        "eval_cell": {k: dec[k] for k in ("gen_length", "block_length", "steps", "schedule")} | {"remasking": "lcr"},
    }
    if algorithm != "sft":
        shared |= {"steps": dec["steps"], "reward_processes": config["evaluation"]["reward_processes"]}
    if algorithm == "mdpo":
        shared["semi_ar_block"] = min(config["evaluation"]["grid"]["block_length"])
        if variant in MDPO_MODES:
            shared["rollout_modes"] = MDPO_MODES[variant]
    if algorithm == "diffu_grpo":
        shared["block_length"] = min(config["evaluation"]["grid"]["block_length"])
    return as_json(shared | t[algorithm])


def launcher():
    """`maskdiff` on one process, or `accelerate launch` with the configured multi-GPU config."""
    t = config["training"]
    if t["gpus"] > 1 and t["accelerate_config"]:
        return f"accelerate launch --config_file {t['accelerate_config']} --num_processes {t['gpus']} -m maskdiff.cli"
    return "maskdiff"


TRAIN_CODE = library_code("train", "evaluate.py", "sampling", "rewards", "models", "batching.py", "tasks/__init__.py", "stats.py")
TRAIN_RESOURCES = {"runtime": 240, "gpu": config["training"]["gpus"]} if config["training"]["gpus"] else {"runtime": 240}


def eval_args():
    return " ".join(f"{task}={DATA}/tasks/{task}/test.jsonl" for task in TASKS)


rule train_sft:
    input:
        base=base_model_path(),
        train=expand(f"{RESULTS}/mining/{{task}}/all_data.jsonl", task=TASKS),
        test=expand(f"{DATA}/tasks/{{task}}/test.jsonl", task=TASKS),
        code=TRAIN_CODE,
    output:
        model=directory(f"{RESULTS}/models/sft"),
    params:
        settings=trainer_settings("sft"),
        model_options=model_options(),
        eval=eval_args(),
        launcher=launcher(),
        seed=config["seed"],
        checkpoint_dir=f"{RESULTS}/checkpoints/sft",
    threads: config["training"]["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{LOGS}/train/sft.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/sft.tsv"
    conda:
        CONDA_ENV
    message:
        "Masked SFT on the training prompts' reference solutions"
    shell:
        "{params.launcher} train-sft --base {input.base} --model-options {params.model_options:q} --train {input.train}"
        " --out {output.model} --checkpoint-dir {params.checkpoint_dir} --settings {params.settings:q}"
        " --eval {params.eval} --seed {params.seed} --threads {threads} > {log} 2>&1"


rule train_diffu_grpo:
    input:
        base=base_model_path(),
        train=expand(f"{RESULTS}/mining/{{task}}/all_data.jsonl", task=TASKS),
        test=expand(f"{DATA}/tasks/{{task}}/test.jsonl", task=TASKS),
        code=TRAIN_CODE,
    output:
        model=directory(f"{RESULTS}/models/diffu_grpo"),
    params:
        settings=trainer_settings("diffu_grpo"),
        model_options=model_options(),
        eval=eval_args(),
        launcher=launcher(),
        seed=config["seed"],
        checkpoint_dir=f"{RESULTS}/checkpoints/diffu_grpo",
    threads: config["training"]["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{LOGS}/train/diffu_grpo.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/diffu_grpo.tsv"
    conda:
        CONDA_ENV
    message:
        "diffu-GRPO on all training prompts"
    shell:
        "{params.launcher} train-diffu-grpo --base {input.base} --model-options {params.model_options:q}"
        " --train {input.train} --out {output.model} --checkpoint-dir {params.checkpoint_dir}"
        " --settings {params.settings:q} --eval {params.eval} --seed {params.seed} --threads {threads} > {log} 2>&1"


def mdpo_train_data(wildcards):
    name = "all_data" if wildcards.mdpo_variant == "mdpo_all_data" else "answer_backslide"
    return expand(f"{RESULTS}/mining/{{task}}/{name}.jsonl", task=TASKS)


def mdpo_fallback(wildcards, input):
    """Only with mining.fallback_to_all_data: all prompts when the mined set turns out empty."""
    if not config["mining"]["fallback_to_all_data"] or wildcards.mdpo_variant == "mdpo_all_data":
        return ""
    return "--fallback-train " + " ".join(f"{RESULTS}/mining/{task}/all_data.jsonl" for task in TASKS)


rule train_mdpo:
    input:
        base=base_model_path(),
        train=mdpo_train_data,
        test=expand(f"{DATA}/tasks/{{task}}/test.jsonl", task=TASKS),
        code=TRAIN_CODE,
    output:
        model=directory(f"{RESULTS}/models/{{mdpo_variant}}"),
    params:
        settings=lambda w: trainer_settings("mdpo", w.mdpo_variant),
        model_options=model_options(),
        eval=eval_args(),
        launcher=launcher(),
        seed=config["seed"],
        checkpoint_dir=lambda w: f"{RESULTS}/checkpoints/{w.mdpo_variant}",
        fallback=mdpo_fallback,
    threads: config["training"]["threads"]
    resources:
        **TRAIN_RESOURCES,
    log:
        f"{LOGS}/train/{{mdpo_variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{mdpo_variant}}.tsv"
    conda:
        CONDA_ENV
    message:
        "MDPO ({wildcards.mdpo_variant})"
    shell:
        "{params.launcher} train-mdpo --base {input.base} --model-options {params.model_options:q} --train {input.train}"
        " --out {output.model} --checkpoint-dir {params.checkpoint_dir} --settings {params.settings:q}"
        " --eval {params.eval} {params.fallback} --seed {params.seed} --threads {threads} > {log} 2>&1"
