# Stage 4: tables and reports.


rule summary:
    input:
        cells=expand(f"{RESULTS}/eval/{{model}}/{{task}}/{{group}}.json", model=["base"], task=TASKS, group=cell_groups()),
        code=library_code("summary.py"),
    output:
        csv=f"{RESULTS}/summary.csv",
    log:
        f"{LOGS}/summary.log",
    conda:
        CONDA_ENV
    message:
        "Gathering the evaluation cells into {output.csv}"
    shell:
        "maskdiff summarize --inputs {input.cells} --out {output.csv} > {log} 2>&1"
