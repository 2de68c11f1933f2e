# Settings and input functions of the similarity stage (no rules; included by similarity.smk).
import re

from modelkin.similarity.pairs import plan_pairs, similarity_job

# Every configured pair by its name (the {pair} wildcard); shorthands expanded, repeats dropped;
# models-section names as external ids, whose probe is their data set (the catalog's).
SIMILARITY_PAIRS = {pair.name: pair for pair in plan_pairs(config, MODELS)}


def similarity_pair(wildcards):
    return SIMILARITY_PAIRS[wildcards.pair]


def similarity_pair_constraint():
    return "|".join(map(re.escape, SIMILARITY_PAIRS)) or "(?!)"


def similarity_params(wildcards):
    return canonical(similarity_job(config, similarity_pair(wildcards)))
