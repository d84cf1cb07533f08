# Stage 7: the precision / First-Hitting-Sampler study (Zheng et al., arXiv 2409.02908):
# (a) model-free fp32 vs fp64 draws against a mask class; (b) the base model sampled with the
# ancestral sampler in fp32 and fp64 at growing step counts, and with FHS.


rule precision_model_free:
    input:
        code=rule_code("precision-model-free"),
    output:
        LAYOUT.precision_part("model_free"),
    params:
        settings=as_json(config["precision"]["model_free"] | {"seed": config["seed"]}),
    threads: config["precision"]["threads"]
    resources:
        **stage_resources("precision"),
    log:
        LAYOUT.log("precision", "model_free"),
    benchmark:
        LAYOUT.benchmark("precision", "model_free")
    conda:
        CONDA_ENV
    message:
        "Precision study (a): fp32 vs fp64 categorical draws, simulated and analytic"
    shell:
        "maskdiff precision-model-free --settings {params.settings:q} --out {output} --threads {threads} > {log} 2>&1"


rule precision_model:
    input:
        model=base_model_path(),
        data=LAYOUT.task_file(config["precision"]["task"], "test"),
        code=rule_code("precision-model"),
    output:
        LAYOUT.precision_part("model"),
    params:
        settings=as_json(
            config["precision"]["model"]
            | {"seed": config["seed"], "gen_length": config["decoding"]["gen_length"],
               "unconditional_length": config["pretrain"]["unconditional_length"]}
        ),
        model_options=model_options(),
        max_problems=config["precision"]["max_problems"],
    threads: config["precision"]["threads"]
    resources:
        **stage_resources("precision"),
    log:
        LAYOUT.log("precision", "model"),
    benchmark:
        LAYOUT.benchmark("precision", "model")
    conda:
        CONDA_ENV
    message:
        "Precision study (b): ancestral fp32/fp64 vs FHS on the base model"
    shell:
        "maskdiff precision-model --model {input.model} --model-options {params.model_options:q} --data {input.data}"
        " --max-problems {params.max_problems} --settings {params.settings:q} --out {output} --threads {threads}"
        " > {log} 2>&1"


rule precision_report:
    input:
        notebook=PRECISION_NOTEBOOK,
        parts=rules.precision_model_free.output + rules.precision_model.output,
        code=rule_code("precision-combine", notebooks=[PRECISION_NOTEBOOK]),
    output:
        csv=report(LAYOUT.result("precision.csv"), category="Tables", caption="../report/precision_csv.rst"),
        notebook=LAYOUT.notebook("precision"),
        html=report(LAYOUT.result("precision.html"), category="Report", caption="../report/precision.rst"),
    params:
        preset=PRESET,
    log:
        LAYOUT.log("precision", "report"),
    benchmark:
        LAYOUT.benchmark("precision", "report")
    conda:
        CONDA_ENV
    message:
        "Rendering the precision study to {output.html}"
    shell:
        "(maskdiff precision-combine --inputs {input.parts} --out {output.csv}"
        " && papermill {input.notebook} {output.notebook} -k maskdiff --cwd . -p preset {params.preset}"
        " -p precision_csv {output.csv}"
        " && jupyter nbconvert --to html --no-input --output-dir $(dirname {output.html}) --output precision {output.notebook}"
        ") > {log} 2>&1"
