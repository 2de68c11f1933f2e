rule prepare_data:
    output:
        f"{R}/data/{{dataset}}.safetensors",
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        data_root=config["data_root"],
    script:
        "../scripts/prepare_data.py"
