# Stage 1: task datasets (generated for the local presets), one job per task.


if config["data"]["source"] == "hub":

    # Hub downloads run on the submitting host: cluster compute nodes often have no internet.
    localrules:
        prepare_data,


rule prepare_data:
    input:
        hub_test_file,
        code=library_code("tasks"),
    output:
        pretrain=f"{DATA}/tasks/{{task}}/pretrain.jsonl",
        train=f"{DATA}/tasks/{{task}}/train.jsonl",
        validation=f"{DATA}/tasks/{{task}}/validation.jsonl",
        test=f"{DATA}/tasks/{{task}}/test.jsonl",
        manifest=f"{DATA}/tasks/{{task}}/manifest.json",
    params:
        settings=data_settings,
        source=config["data"]["source"],
        seed=config["seed"],
        prompt_style=config["data"]["prompt_style"],
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    resources:
        **stage_resources("prepare_data"),
    log:
        f"{LOGS}/prepare_data/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{task}}.tsv"
    conda:
        CONDA_ENV
    message:
        "Generating the {wildcards.task} splits"
    shell:
        "maskdiff prepare-data --source {params.source} --task {wildcards.task} --settings {params.settings:q} --seed {params.seed}"
        " --prompt-style {params.prompt_style} --out-dir {params.out_dir} > {log} 2>&1"
