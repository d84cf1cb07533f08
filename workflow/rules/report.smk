# Stage 6: tables and the papermill report. The README's results section is generated from a run
# by hand, not by the DAG (it is committed): `maskdiff results-snapshot --results results/local
# --preset local --out docs/results/local.json` then `maskdiff results-readme --snapshot
# docs/results/local.json --readme README.md` (src/maskdiff/results_readme.py). The report's last
# section previews that text from the run it renders.


rule aggregate_sweep:
    input:
        cells=eval_outputs(),
        code=rule_code("summarize"),
    output:
        sweep=report(LAYOUT.result("sweep.csv"), category="Tables", caption="../report/sweep.rst"),
        summary=report(LAYOUT.result("summary.csv"), category="Tables", caption="../report/summary.rst"),
        metrics=LAYOUT.result("metrics.json"),
    params:
        default_cell=as_json({k: config["decoding"][k] for k in ("block_length", "steps")}),
    resources:
        **stage_resources("report"),
    log:
        LAYOUT.log("aggregate_sweep"),
    benchmark:
        LAYOUT.benchmark("aggregate_sweep")
    conda:
        CONDA_ENV
    message:
        "Aggregating {params.default_cell} and the whole sweep into tables"
    shell:
        "maskdiff summarize --inputs {input.cells} --out {output.sweep} --headline {output.summary}"
        " --default-cell {params.default_cell:q} --metrics {output.metrics} > {log} 2>&1"


rule trajectories:
    input:
        unpack(trajectory_models),
        base=base_model_path(),
        validation=validation_files(),
        code=rule_code("trajectories"),
    output:
        LAYOUT.result("trajectories.json"),
    params:
        compare=lambda w, input: " ".join(f"{name}={input[name]}" for name in trajectory_models()),
        validation=eval_args(),
        cell=as_json(default_cell()),
        model_options=model_options(),
        rewards=reward_settings(),
        cases=config["evaluation"]["trajectory_cases"],
        scan=config["evaluation"]["trajectory_scan"],
        seed=config["seed"],
    threads: config["evaluation"]["threads"]
    resources:
        **stage_resources("evaluate"),
    log:
        LAYOUT.log("trajectories"),
    benchmark:
        LAYOUT.benchmark("trajectories")
    conda:
        CONDA_ENV
    message:
        "Denoising trajectories of Answer Backslide validation problems (base model vs MDPO; RCR vs LCR)"
    shell:
        "maskdiff trajectories --model {input.base} --model-options {params.model_options:q} --compare {params.compare}"
        " --validation {params.validation} --cell {params.cell:q} --cases {params.cases} --scan {params.scan}"
        " --rewards {params.rewards:q} --seed {params.seed} --threads {threads} --out {output} > {log} 2>&1"


rule report:
    input:
        notebook=REPORT_NOTEBOOK,
        sweep=rules.aggregate_sweep.output.sweep,
        mining=[LAYOUT.mining_stats(task) for task in TASKS],
        rollouts=[shard for task in ROLLOUT_TASKS for shard in rollout_shards(task)],
        paper_table=layout.PAPER_TABLE,
        models=trained_model_dirs(),
        benchmarks=dag_benchmarks(),
        tuned=tuned_file(),
        trajectories=rules.trajectories.output[0],
        code=rule_code(notebooks=[REPORT_NOTEBOOK]),
    output:
        notebook=LAYOUT.notebook("report"),
        html=report(LAYOUT.result("report.html"), category="Report", caption="../report/report.rst"),
    params:
        preset=PRESET,
        results=lambda w, input: os.path.dirname(input.sweep),
        benchmarks=lambda w, input: as_json({"benchmark_files": list(input.benchmarks)}),
        tuned=lambda w, input: f"-p tuned_file {input.tuned}" if input.tuned else "",
        trajectories=lambda w, input: f"-p trajectories_file {input.trajectories}",
    resources:
        **stage_resources("report"),
    log:
        LAYOUT.log("report"),
    benchmark:
        LAYOUT.benchmark("report")
    conda:
        CONDA_ENV
    message:
        "Rendering the report notebook to {output.html}"
    shell:
        "(papermill {input.notebook} {output.notebook} -k maskdiff --cwd . -p preset {params.preset}"
        " -p results_dir {params.results} -p paper_table {input.paper_table} -y {params.benchmarks:q} {params.tuned}"
        " {params.trajectories}"
        " && jupyter nbconvert --to html --no-input --output-dir $(dirname {output.html}) --output report {output.notebook}"
        ") > {log} 2>&1"


rule training_curves:
    input:
        models=trained_model_dirs(),
        code=rule_code("curves"),
    output:
        curves=directory(LAYOUT.result("curves")),
    resources:
        **stage_resources("report"),
    log:
        LAYOUT.log("training_curves"),
    benchmark:
        LAYOUT.benchmark("training_curves")
    conda:
        CONDA_ENV
    message:
        "Training curves of every trained model as tables (what dvc plots diff draws)"
    shell:
        "maskdiff curves --models {input.models} --out {output.curves} > {log} 2>&1"


rule figures:
    input:
        summary=rules.aggregate_sweep.output.summary,
        sweep=rules.aggregate_sweep.output.sweep,
        curves=rules.training_curves.output.curves,
        code=rule_code("figures"),
    output:
        figures=report(directory(LAYOUT.result("figures")), patterns=["{name}.svg"], category="Figures",
                       caption="../report/figures.rst"),
    resources:
        **stage_resources("report"),
    log:
        LAYOUT.log("figures"),
    benchmark:
        LAYOUT.benchmark("figures")
    conda:
        CONDA_ENV
    message:
        "Headline figures (what snakemake --report attaches)"
    shell:
        "maskdiff figures --summary {input.summary} --sweep {input.sweep} --curves {input.curves} --out {output.figures}"
        " > {log} 2>&1"
