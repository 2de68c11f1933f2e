from modelkin.data import prepare_dataset
from modelkin.workflow import snakemake_job

# snakemake_job registers the config's own data sets (datasets:), which prepare_dataset reads
# from their files; built-in ones come from scikit-learn or torchvision under data_root.
with snakemake_job(snakemake):
    prepare_dataset(
        snakemake.wildcards.dataset,
        snakemake.output[0],
        data_root=snakemake.config["data_root"],
    )
