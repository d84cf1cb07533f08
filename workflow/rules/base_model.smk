# Stage 2: the base model. The local presets pretrain a tiny bidirectional transformer from
# scratch with the masked-diffusion loss (checkpoints outside the output let a killed job resume);
# the paper preset fetches LLaDA-8B-Instruct once into save_pretrained form (safetensors).


if config["model"]["source"] == "pretrained":

    # Hub downloads run on the submitting host: cluster compute nodes often have no internet.
    localrules:
        fetch_base,

    rule fetch_base:
        input:
            code=library_code("models"),
        output:
            model=directory(f"{RESULTS}/models/base"),
        params:
            name=config["model"]["name_or_path"],
            model_options=model_options(),
        resources:
            **stage_resources("base_model"),
        log:
            f"{LOGS}/fetch_base.log",
        benchmark:
            f"{RESULTS}/benchmarks/fetch_base.tsv"
        conda:
            CONDA_ENV
        message:
            "Fetching the base model {params.name} (safetensors)"
        shell:
            "maskdiff fetch-model --name {params.name} --model-options {params.model_options:q} --out {output.model}"
            " > {log} 2>&1"


else:

    rule pretrain_base:
        input:
            data=expand(f"{DATA}/tasks/{{task}}/pretrain.jsonl", task=TASKS),
            code=library_code("train/pretrain.py", "train/checkpoint.py", "train/data.py", "train/diffusion_loss.py",
                              "train/schedule.py", "models", "batching.py", "tasks/__init__.py", "tasks/unconditional.py"),
        output:
            model=directory(f"{RESULTS}/models/base"),
        params:
            model_spec=as_json(config["model"]["tiny"]),
            settings=as_json({k: v for k, v in config["pretrain"].items() if k != "seed"}),
            gen_length=config["decoding"]["gen_length"],
            seed=pretrain_seed(),
            checkpoint_dir=f"{RESULTS}/checkpoints/base",
        threads: config["pretrain"]["threads"]
        priority: 100  # on the critical path: start it before the independent precision study
        resources:
            **stage_resources("base_model"),
        log:
            f"{LOGS}/pretrain_base.log",
        benchmark:
            f"{RESULTS}/benchmarks/pretrain_base.tsv"
        conda:
            CONDA_ENV
        message:
            "Pretraining the tiny base model ({params.settings})"
        shell:
            "maskdiff pretrain --data {input.data} --out {output.model} --checkpoint-dir {params.checkpoint_dir}"
            " --model-spec {params.model_spec:q} --settings {params.settings:q} --gen-length {params.gen_length}"
            " --seed {params.seed} --threads {threads} > {log} 2>&1"
