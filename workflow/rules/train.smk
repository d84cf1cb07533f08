# Stage 5: fine-tuning the base model: masked SFT, diffu-GRPO and MDPO (on the mined Answer
# Backslide set, and on all data for the ablation), all at the same number of gradient updates.
# Checkpoints live outside the declared output, so a killed job resumes where it stopped.


rule train_sft:
    input:
        base=base_model_path(),
        train=train_data("all_data"),
        validation=validation_files,
        tuned=tuned_file(),
        code=TRAIN_CODE,
    output:
        model=directory(LAYOUT.model_dir(train_run("sft_model", "sft"))),
    params:
        settings=lambda w: trainer_settings(w.sft_model),
        model_options=model_options(),
        rewards=reward_settings(),
        eval=eval_args,
        launcher=launcher(),
        seed=lambda w: trainer_seed(w.sft_model),
        checkpoint_dir=lambda w: checkpoint_dir(w, w.sft_model),
    threads: config["training"]["threads"]
    priority: 50
    resources:
        **stage_resources("train"),
    log:
        LAYOUT.log("train", train_run("sft_model", "sft")),
    benchmark:
        LAYOUT.benchmark("train", train_run("sft_model", "sft"))
    conda:
        CONDA_ENV
    message:
        "Masked SFT on the training prompts' reference solutions ({wildcards.sft_model})"
    shell:
        "{params.launcher} train-sft --model {input.base} --model-options {params.model_options:q} --train {input.train}"
        " --out {output.model} --checkpoint-dir {params.checkpoint_dir} --settings {params.settings:q}"
        " --validation {params.eval} --rewards {params.rewards:q} --seed {params.seed} --threads {threads} > {log} 2>&1"


rule train_diffu_grpo:
    input:
        base=base_model_path(),
        train=train_data("all_data"),
        validation=validation_files,
        tuned=tuned_file(),
        code=TRAIN_CODE,
    output:
        model=directory(LAYOUT.model_dir(train_run("grpo_model", "diffu_grpo"))),
    params:
        settings=lambda w: trainer_settings(w.grpo_model),
        model_options=model_options(),
        rewards=reward_settings(),
        eval=eval_args,
        launcher=launcher(),
        seed=lambda w: trainer_seed(w.grpo_model),
        checkpoint_dir=lambda w: checkpoint_dir(w, w.grpo_model),
    threads: config["training"]["threads"]
    priority: 50
    resources:
        **stage_resources("train"),
    log:
        LAYOUT.log("train", train_run("grpo_model", "diffu_grpo")),
    benchmark:
        LAYOUT.benchmark("train", train_run("grpo_model", "diffu_grpo"))
    conda:
        CONDA_ENV
    message:
        "diffu-GRPO on all training prompts ({wildcards.grpo_model})"
    shell:
        "{params.launcher} train-diffu-grpo --model {input.base} --model-options {params.model_options:q}"
        " --train {input.train} --out {output.model} --checkpoint-dir {params.checkpoint_dir}"
        " --settings {params.settings:q} --validation {params.eval} --rewards {params.rewards:q} --seed {params.seed} --threads {threads} > {log} 2>&1"


rule train_mdpo:
    input:
        base=base_model_path(),
        train=mdpo_train_data,
        validation=validation_files,
        tuned=tuned_file(),
        code=TRAIN_CODE,
    output:
        model=directory(LAYOUT.model_dir(train_run("mdpo_model", "mdpo"))),
    params:
        settings=lambda w: trainer_settings(w.mdpo_model),
        model_options=model_options(),
        rewards=reward_settings(),
        eval=eval_args,
        launcher=launcher(),
        seed=lambda w: trainer_seed(w.mdpo_model),
        checkpoint_dir=lambda w: checkpoint_dir(w, w.mdpo_model),
        fallback=lambda w: mdpo_fallback(w.mdpo_model, train_tasks(w)),
    threads: config["training"]["threads"]
    priority: 50
    resources:
        **stage_resources("train"),
    log:
        LAYOUT.log("train", train_run("mdpo_model", "mdpo")),
    benchmark:
        LAYOUT.benchmark("train", train_run("mdpo_model", "mdpo"))
    conda:
        CONDA_ENV
    message:
        "MDPO ({wildcards.mdpo_model})"
    shell:
        "{params.launcher} train-mdpo --model {input.base} --model-options {params.model_options:q} --train {input.train}"
        " --out {output.model} --checkpoint-dir {params.checkpoint_dir} --settings {params.settings:q}"
        " --validation {params.eval} {params.fallback} --rewards {params.rewards:q} --seed {params.seed} --threads {threads} > {log} 2>&1"
