# Prepared data sets: built-in ones from scikit-learn or torchvision, users' own from their files.


rule prepare_data:
    input:
        data_source_files,
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
        setting=data_setting,
    script:
        "../scripts/prepare_data.py"
