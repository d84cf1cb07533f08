# Stage 5: fine-tuning the base model: masked SFT, diffu-GRPO and MDPO (on the mined Answer
# Backslide set, and on all data for the ablation), all at the same number of gradient updates.
# Checkpoints live outside the declared output, so a killed job resumes where it stopped.


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
    priority: 50
    resources:
        **stage_resources("train"),
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
    priority: 50
    resources:
        **stage_resources("train"),
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


rule train_mdpo:
    input:
        base=base_model_path(),
        train=mdpo_train_data,
        test=expand(f"{DATA}/tasks/{{task}}/test.jsonl", task=TASKS),
        code=TRAIN_CODE,
    output:
        model=directory(f"{RESULTS}/models/{{mdpo_variant}}"),
    params:
        settings=lambda w: trainer_settings(w.mdpo_variant),
        model_options=model_options(),
        eval=eval_args(),
        launcher=launcher(),
        seed=config["seed"],
        checkpoint_dir=lambda w: f"{RESULTS}/checkpoints/{w.mdpo_variant}",
        fallback=mdpo_fallback,
    threads: config["training"]["threads"]
    priority: 50
    resources:
        **stage_resources("train"),
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
