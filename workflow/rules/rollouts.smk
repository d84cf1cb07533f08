# Stage 3: baseline rollouts of the base model on the training prompts, scattered over shards
# (separate jobs on a cluster) and gathered by the mining rule.


scattergather:
    rollouts=config["rollouts"]["shards"],


rule rollout_shard:
    input:
        model=base_model_path(),
        data=LAYOUT.task_file("{task}", "train"),
        code=rule_code("rollout"),
    output:
        LAYOUT.rollout_shard("{task}", "{scatteritem}"),
    params:
        settings=as_json({**{k: config["rollouts"][k] for k in ("steps", "block_lengths", "remasking", "every_block_length")},
                          "gen_length": config["decoding"]["gen_length"], "schedule": config["decoding"]["schedule"],
                          "compute_dtype": config["decoding"]["compute_dtype"]}),
        shard=shard_index,
        num_shards=config["rollouts"]["shards"],
        model_options=model_options(),
        batch_size=config["rollouts"]["batch_size"],
        reward_processes=config["evaluation"]["reward_processes"],
        rewards=reward_settings(),
        seed=config["seed"],
    threads: config["rollouts"]["threads"]
    resources:
        **stage_resources("rollouts"),
    log:
        LAYOUT.rollout_log("{task}", "{scatteritem}"),
    benchmark:
        LAYOUT.benchmark("rollout_shard", "{task}", "{scatteritem}")
    conda:
        CONDA_ENV
    message:
        "Baseline rollouts of {wildcards.task}, shard {wildcards.scatteritem}"
    shell:
        "maskdiff rollout --model {input.model} --model-options {params.model_options:q} --data {input.data}"
        " --shard {params.shard} --num-shards {params.num_shards} --settings {params.settings:q} --out {output}"
        " --batch-size {params.batch_size} --reward-processes {params.reward_processes} --rewards {params.rewards:q} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"
