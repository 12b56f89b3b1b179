# Benchmarks that run from Snakemake on request (not part of `rule all`): router quality
# on the real matrices in ../shared/datasets (benchmarks/router_quality.py).


rule router_quality:
    input:
        "benchmarks/router_quality.py",
    output:
        md="results/benchmarks/router_quality.md",
        json="results/benchmarks/router_quality.json",
        png="results/benchmarks/router_quality.png",
    log:
        P.log("router_quality/router_quality.log"),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    message:
        "router quality on lcb-ladder5 and RouterBench MBPP (5 seeds, real answers)"
    shell:
        "python benchmarks/router_quality.py --out results/benchmarks/router_quality > {log} 2>&1"
