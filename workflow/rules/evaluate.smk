# Stage 3: decoding sweeps. One job per (model, task) evaluates every cell group of the grid (one
# group per block length x steps, each with every remasking rule) into eval/<model>/<task>/<group>.json:
# starting a process (torch, transformers, the model) took ~5 s, 30% of a one-group job on `local`,
# and an 8B model's load is minutes on `paper`. A changed grid value reruns the affected (model,
# task) jobs whole.


rule evaluate:
    input:
        model=model_dir,
        data=LAYOUT.task_file("{task}", "test"),
        code=rule_code("evaluate"),
    output:
        groups=directory(LAYOUT.eval_dir("{model}", "{task}")),
    params:
        groups=lambda w: as_json(eval_groups(w.model)),
        model_options=model_options(),
        batch_size=config["evaluation"]["batch_size"],
        reward_processes=config["evaluation"]["reward_processes"],
        rewards=reward_settings(),
        seed=config["seed"],
    threads: config["evaluation"]["threads"]
    resources:
        **stage_resources("evaluate"),
    log:
        LAYOUT.log("evaluate", "{model}", "{task}"),
    benchmark:
        LAYOUT.benchmark("evaluate", "{model}", "{task}")
    conda:
        CONDA_ENV
    message:
        "Evaluating {wildcards.model} on {wildcards.task} (every cell group of the grid)"
    shell:
        "maskdiff evaluate --model {input.model} --model-options {params.model_options:q} --model-name {wildcards.model}"
        " --data {input.data} --groups {params.groups:q} --out {output.groups} --batch-size {params.batch_size}"
        " --reward-processes {params.reward_processes} --rewards {params.rewards:q} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"
