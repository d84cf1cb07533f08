# Stage 4: Answer Backslide mining: gather the rollout shards of a task into the mined set, the
# all-data set (ablation) and statistics; or, per config, take a pre-mined set (paper: OpenR1).


rule mine_answer_backslide:
    input:
        unpack(mining_inputs),
        train=LAYOUT.task_file("{task}", "train"),
        code=rule_code("mine"),
    output:
        mined=LAYOUT.mined("{task}", "answer_backslide"),
        all_data=LAYOUT.mined("{task}", "all_data"),
        stats=LAYOUT.mining_stats("{task}"),
    params:
        source=lambda w, input: f"--premined {input.premined}" if "premined" in input.keys() else f"--shards {' '.join(input.shards)}",
    resources:
        **stage_resources("mining"),
    log:
        LAYOUT.log("mining", "{task}"),
    benchmark:
        LAYOUT.benchmark("mine_answer_backslide", "{task}")
    conda:
        CONDA_ENV
    message:
        "Mining Answer Backslide samples of {wildcards.task}"
    shell:
        "maskdiff mine --train {input.train} {params.source} --out-mined {output.mined} --out-all {output.all_data}"
        " --out-stats {output.stats} > {log} 2>&1"
