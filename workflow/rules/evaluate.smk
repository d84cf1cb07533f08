# Stage 3: decoding sweeps. One job per (model, task, cell group) so a cluster fans them out;
# changing one grid value reruns only the groups it touches.


rule evaluate:
    input:
        model=model_dir,
        data=f"{DATA}/tasks/{{task}}/test.jsonl",
        code=library_code("evaluate.py", "backslide.py", "sampling", "rewards", "models", "batching.py", "stats.py", "tasks/__init__.py"),
    output:
        cells=f"{RESULTS}/eval/{{model}}/{{task}}/{{group}}.json",
        problems=f"{RESULTS}/eval/{{model}}/{{task}}/{{group}}.problems.jsonl",
    params:
        cells=lambda w: as_json(group_cells(w.group, w.model)),
        max_problems=lambda w: group_problems(w.group),
        model_options=model_options(),
        batch_size=config["evaluation"]["batch_size"],
        reward_processes=config["evaluation"]["reward_processes"],
        rewards=reward_settings(),
        seed=config["seed"],
    threads: config["evaluation"]["threads"]
    resources:
        **stage_resources("evaluate"),
    log:
        f"{LOGS}/evaluate/{{model}}/{{task}}/{{group}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/{{task}}/{{group}}.tsv"
    conda:
        CONDA_ENV
    message:
        "Evaluating {wildcards.model} on {wildcards.task}, cells {wildcards.group}"
    shell:
        "maskdiff evaluate --model {input.model} --model-options {params.model_options:q} --name {wildcards.model}"
        " --data {input.data} --cells {params.cells:q} --out-json {output.cells} --out-problems {output.problems}"
        " --batch-size {params.batch_size} --max-problems {params.max_problems}"
        " --reward-processes {params.reward_processes} --rewards {params.rewards:q} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"
