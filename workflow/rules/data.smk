rule prepare_data:
    output:
        f"{R}/data/{{dataset}}.safetensors",
    params:
        data_root=config["data_root"],
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/prepare_data.py"
