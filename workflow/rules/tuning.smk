# The tuning stage (`make tune`; not part of `rule all`): a staged grid search per model, each point
# a wildcard, trained from the preset's base model and scored on the validation split at its final
# checkpoint. A stage's choice is a Snakemake checkpoint: the next stage's points are read from it.
# Library: maskdiff.tuning (selection rule, point names), the trainers, maskdiff.evaluate.

wildcard_constraints:
    tmodel="|".join(config["tuning"]["models"]),
    point=r"[a-z]+=[^,/]+(,[a-z]+=[^,/]+)*",
    stage=r"\d+",


rule tune_train:
    input:
        base=base_model_path(),
        train=tuning_train_data,
        code=TRAIN_CODE,
    output:
        model=directory(LAYOUT.tuning_model("{tmodel}", "{point}")),
    params:
        algorithm=lambda w: TRAINERS[w.tmodel].replace("_", "-"),
        settings=tuning_settings,
        model_options=model_options(),
        rewards=reward_settings(),
        launcher=launcher(),
        seed=config["seed"],
        checkpoint_dir=lambda w: LAYOUT.tuning_checkpoint(w.tmodel, w.point),
        fallback=lambda w: mdpo_fallback(w.tmodel),
    threads: config["training"]["threads"]
    resources:
        **stage_resources("train"),
    log:
        LAYOUT.log("tuning", "{tmodel}", "{point}", "train"),
    benchmark:
        LAYOUT.benchmark("tuning", "{tmodel}", "{point}", "train")
    conda:
        CONDA_ENV
    message:
        "Tuning {wildcards.tmodel}: training point {wildcards.point}"
    shell:
        "{params.launcher} train-{params.algorithm} --model {input.base} --model-options {params.model_options:q}"
        " --train {input.train} --out {output.model} --checkpoint-dir {params.checkpoint_dir}"
        " --settings {params.settings:q} {params.fallback} --rewards {params.rewards:q} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"


rule tune_score:
    input:
        model=rules.tune_train.output.model,
        validation=validation_files(),
        code=rule_code("score-validation"),
    output:
        LAYOUT.tuning_score("{tmodel}", "{point}"),
    params:
        data=" ".join(f"{task}={path}" for task, path in zip(TASKS, validation_files())),
        cell=as_json(default_cell()),
        model_options=model_options(),
        rewards=reward_settings(),
        seed=config["seed"],
    threads: config["evaluation"]["threads"]
    resources:
        **stage_resources("evaluate"),
    log:
        LAYOUT.log("tuning", "{tmodel}", "{point}", "score"),
    conda:
        CONDA_ENV
    message:
        "Tuning {wildcards.tmodel}: scoring point {wildcards.point} on validation"
    shell:
        "maskdiff score-validation --model {input.model} --model-options {params.model_options:q} --validation {params.data}"
        " --cell {params.cell:q} --rewards {params.rewards:q} --seed {params.seed} --out {output} --threads {threads}"
        " > {log} 2>&1"


checkpoint tune_stage:
    input:
        scores=stage_scores,
        code=rule_code("tune-stage"),
    output:
        table=LAYOUT.tuning_stage("{tmodel}", "{stage}"),
    params:
        stage=lambda w: as_json(config["tuning"]["stages"][int(w.stage) - 1]),
        previous=lambda w: f"--previous {LAYOUT.tuning_stage(w.tmodel, int(w.stage) - 1)}" if int(w.stage) > 1 else "",
        tie_break=as_json(config["tuning"]["tie_break"]),
    log:
        LAYOUT.tuning_stage_log("{tmodel}", "{stage}"),
    conda:
        CONDA_ENV
    message:
        "Tuning {wildcards.tmodel}: stage {wildcards.stage}"
    shell:
        "maskdiff tune-stage --model-name {wildcards.tmodel} --stage {wildcards.stage} --settings {params.stage:q}"
        " --tie-break {params.tie_break:q} {params.previous} --points $(dirname {input.scores}) --out {output.table}"
        " > {log} 2>&1"


rule tune_summary:
    input:
        stages=[LAYOUT.tuning_stage(m, k) for m in config["tuning"]["models"]
                for k in range(1, len(config["tuning"]["stages"]) + 1)],
        base=base_model_path(),
        code=rule_code("tune-summary"),
    output:
        LAYOUT.tuning_chosen,
    params:
        settings=as_json({k: config["tuning"][k] for k in ("stages", "tie_break")}),
        preset=PRESET,
    log:
        LAYOUT.log("tuning", "summary"),
    conda:
        CONDA_ENV
    message:
        "Tuning: the chosen settings of every model -> {output}"
    shell:
        "maskdiff tune-summary --stages {input.stages} --settings {params.settings:q} --preset {params.preset}"
        " --model {input.base} --out {output} > {log} 2>&1"
