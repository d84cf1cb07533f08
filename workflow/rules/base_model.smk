# Stage 2: the base model. The local presets pretrain a tiny bidirectional transformer from
# scratch with the masked-diffusion loss (checkpoints outside the output let a killed job resume);
# the paper preset fetches LLaDA-8B-Instruct once into save_pretrained form (safetensors).


if config["model"]["source"] == "pretrained":

    # Hub downloads run on the submitting host: cluster compute nodes often have no internet.
    localrules:
        fetch_base,

    rule fetch_base:
        input:
            code=rule_code("fetch-model"),
        output:
            model=directory(LAYOUT.base_model),
        params:
            name=config["model"]["name_or_path"],
            model_options=model_options(),
        resources:
            **stage_resources("base_model"),
        log:
            LAYOUT.log("fetch_base"),
        benchmark:
            LAYOUT.benchmark("fetch_base")
        conda:
            CONDA_ENV
        message:
            "Fetching the base model {params.name} (safetensors)"
        shell:
            "maskdiff fetch-model --model {params.name} --model-options {params.model_options:q} --out {output.model}"
            " > {log} 2>&1"


else:

    rule pretrain_base:
        input:
            data=[LAYOUT.task_file(task, "pretrain") for task in TASKS],
            code=rule_code("pretrain"),
        output:
            model=directory(LAYOUT.base_model),
        params:
            model_spec=as_json(config["model"]["tiny"]),
            settings=as_json({k: v for k, v in config["pretrain"].items() if k != "seed"}),
            gen_length=config["decoding"]["gen_length"],
            seed=pretrain_seed(),
            checkpoint_dir=LAYOUT.checkpoint_dir("base"),
        threads: config["pretrain"]["threads"]
        priority: 100  # on the critical path: start it before the independent precision study
        resources:
            **stage_resources("base_model"),
        log:
            LAYOUT.log("pretrain_base"),
        benchmark:
            LAYOUT.benchmark("pretrain_base")
        conda:
            CONDA_ENV
        message:
            "Pretraining the tiny base model ({params.settings})"
        shell:
            "maskdiff pretrain --data {input.data} --out {output.model} --checkpoint-dir {params.checkpoint_dir}"
            " --model-spec {params.model_spec:q} --settings {params.settings:q} --gen-length {params.gen_length}"
            " --seed {params.seed} --threads {threads} > {log} 2>&1"
