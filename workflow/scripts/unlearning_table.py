from modelkin.unlearning import plot_trajectory, trajectory_table
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    trajectory_table(list(snakemake.input), snakemake.output.table)
    plot_trajectory(snakemake.output.table, snakemake.output.plot)
