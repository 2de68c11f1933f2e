def data_source_files(wildcards):
    """A user data set (config `datasets:`) is prepared from its files: every image of a folder, or
    the one NPZ/HDF5 file, so that adding, removing or changing one prepares it again.
    """
    source = config_source(wildcards.dataset)
    return source_files(source) if source is not None else []


def data_setting(wildcards):
    """What the preparation reads besides its input files, for the params rerun trigger: a built-in
    data set's data_root, a user data set's config entry (changing its size, channels, ... prepares
    it again). One value either way, so that data sets prepared before user data sets existed keep
    their recorded params (Snakemake records the values, not their names)."""
    entry = config["datasets"].get(wildcards.dataset)
    return config["data_root"] if entry is None else canonical(entry)


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
