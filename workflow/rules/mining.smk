# Stage 4: Answer Backslide mining: gather the rollout shards of a task into the mined set, the
# all-data set (ablation) and statistics; or, per config, take a pre-mined set (paper: OpenR1).


rule mine_answer_backslide:
    input:
        unpack(mining_inputs),
        train=f"{DATA}/tasks/{{task}}/train.jsonl",
        code=library_code("mining.py", "backslide.py", "stats.py", "tasks/paper.py"),
    output:
        mined=f"{RESULTS}/mining/{{task}}/answer_backslide.jsonl",
        all_data=f"{RESULTS}/mining/{{task}}/all_data.jsonl",
        stats=f"{RESULTS}/mining/{{task}}/stats.json",
    params:
        source=lambda w, input: f"--premined {input.premined}" if "premined" in input.keys() else f"--shards {' '.join(input.shards)}",
    resources:
        **stage_resources("mining"),
    log:
        f"{LOGS}/mining/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/mine_answer_backslide/{{task}}.tsv"
    conda:
        CONDA_ENV
    message:
        "Mining Answer Backslide samples of {wildcards.task}"
    shell:
        "maskdiff mine --train {input.train} {params.source} --out-mined {output.mined} --out-all {output.all_data}"
        " --out-stats {output.stats} > {log} 2>&1"
