# Stage 7: the precision / First-Hitting-Sampler study (Zheng et al., arXiv 2409.02908):
# (a) model-free fp32 vs fp64 draws against a mask class; (b) the base model sampled with the
# ancestral sampler in fp32 and fp64 at growing step counts, and with FHS.


rule precision_model_free:
    input:
        code=library_code("precision.py", "sampling/categorical.py"),
    output:
        f"{RESULTS}/precision/model_free.csv",
    params:
        settings=as_json(config["precision"]["model_free"] | {"seed": config["seed"]}),
    threads: config["precision"]["threads"]
    resources:
        **stage_resources("precision"),
    log:
        f"{LOGS}/precision/model_free.log",
    benchmark:
        f"{RESULTS}/benchmarks/precision/model_free.tsv"
    conda:
        CONDA_ENV
    message:
        "Precision study (a): fp32 vs fp64 categorical draws, simulated and analytic"
    shell:
        "maskdiff precision-model-free --settings {params.settings:q} --out {output} --threads {threads} > {log} 2>&1"


rule precision_model:
    input:
        model=base_model_path(),
        data=f"{DATA}/tasks/{config['precision']['task']}/test.jsonl",
        code=library_code("precision.py", "sampling", "models", "rewards", "batching.py", "stats.py", "tasks/__init__.py",
                          "tasks/unconditional.py", "tasks/arithmetic.py", "tasks/prompts.py"),
    output:
        f"{RESULTS}/precision/model.csv",
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
        f"{LOGS}/precision/model.log",
    benchmark:
        f"{RESULTS}/benchmarks/precision/model.tsv"
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
        notebook="notebooks/precision.ipynb",
        parts=rules.precision_model_free.output + rules.precision_model.output,
        code=library_code("precision.py"),
    output:
        csv=report(f"{RESULTS}/precision.csv", category="Tables", caption="../report/precision_csv.rst"),
        notebook=f"{RESULTS}/report/precision.ipynb",
        html=report(f"{RESULTS}/precision.html", category="Report", caption="../report/precision.rst"),
    params:
        preset=PRESET,
    log:
        f"{LOGS}/precision/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/precision/report.tsv"
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
