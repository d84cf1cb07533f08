# Stage 1: task datasets (generated for the local presets), one job per task.


if config["data"]["source"] == "hub":

    # Hub downloads run on the submitting host: cluster compute nodes often have no internet.
    localrules:
        prepare_data,


rule prepare_data:
    input:
        hub_test_file,
        code=rule_code("prepare-data"),
    output:
        **{split: LAYOUT.task_file("{task}", split) for split in SPLITS},
        manifest=LAYOUT.manifest("{task}"),
    params:
        settings=data_settings,
        source=config["data"]["source"],
        seed=config["seed"],
        prompt_style=config["data"]["prompt_style"],
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    resources:
        **stage_resources("prepare_data"),
    log:
        LAYOUT.log("prepare_data", "{task}"),
    benchmark:
        LAYOUT.benchmark("prepare_data", "{task}")
    conda:
        CONDA_ENV
    message:
        "Generating the {wildcards.task} splits"
    shell:
        "maskdiff prepare-data --source {params.source} --task {wildcards.task} --settings {params.settings:q} --seed {params.seed}"
        " --prompt-style {params.prompt_style} --out {params.out_dir} > {log} 2>&1"
