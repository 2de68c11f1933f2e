"""Reading, printing, plotting and summarising layer-similarity tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from ..errors import InputError, MissingFileError
from ..io import atomic_path
from ..measures import get_measure
from ..plotting import pyplot, save_figure

STATUS_MARKS = {"degenerate": "deg", "skipped": "n/a", "undefined": "undef"}
SUMMARY_COLUMNS = (
    "pair",
    "model_a",
    "model_b",
    "measure",
    "higher_is_similar",
    "layer_a",
    "layer_b",
    "depth",
    "match",
    "value",
    "status",
    "reason",
    "best_layer_b",
    "best_value",
    "conv_mode",
    "samples",
)


def write_table(table, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def read_table(path: str | Path):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MissingFileError(
            f"{path} does not exist; make it with `modelkin compare-layers A B --data D -o {path}` "
            "or the similarity rule"
        )
    # Only numeric columns may be empty-as-NaN; an empty reason stays "".
    missing_values = {column: ["", "nan", "NaN"] for column in ("value", "best_value", "samples")}
    table = pd.read_csv(path, keep_default_na=False, na_values=missing_values)
    missing = {"layer_a", "layer_b", "measure", "value", "higher_is_similar", "status"} - set(
        table.columns
    )
    if missing:
        raise InputError(
            f"{path} is not a layer-similarity table (missing columns {sorted(missing)})"
        )
    if "reason" not in table:
        table["reason"] = ""
    return table


def _order(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def layer_matrix(table, measure: str):
    """The ``measure`` rows of a long table as a layer_a x layer_b DataFrame (NaN where not
    computed)."""
    rows = table[table["measure"] == measure]
    if rows.empty:
        raise InputError(
            f"measure {measure!r} is not in the table; it has {', '.join(_order(table['measure']))}"
        )
    matrix = rows.pivot(index="layer_a", columns="layer_b", values="value")
    return matrix.loc[_order(rows["layer_a"]), _order(rows["layer_b"])]


def _status_matrix(table, measure: str):
    rows = table[table["measure"] == measure]
    status = rows.pivot(index="layer_a", columns="layer_b", values="status")
    return status.loc[_order(rows["layer_a"]), _order(rows["layer_b"])]


def _direction(measure: str, higher_is_similar: bool | None = None) -> str:
    if higher_is_similar is None:
        higher_is_similar = get_measure(measure).higher_is_similar
    return (
        "similarity, higher = more alike" if higher_is_similar else "distance, lower = more alike"
    )


def format_layer_tables(table, digits: int = 3) -> str:
    """One text matrix per measure (rows: model A's layers, columns: model B's), with NaN cells
    marked by why they are empty (``deg``: degenerate CCA, ``n/a``: not comparable, ``undef``:
    undefined) and flagged degenerate values starred."""
    lines: list[str] = []
    if "model_a" in table:
        lines.append(f"A = {table['model_a'].iloc[0]}")
        lines.append(f"B = {table['model_b'].iloc[0]}")
    if len(table):
        lines.append(
            f"conv_mode {table['conv_mode'].iloc[0]}, samples: {table['sampling'].iloc[0]}"
        )
    footnotes: dict[str, str] = {}
    for measure in _order(table["measure"]):
        values, status = layer_matrix(table, measure), _status_matrix(table, measure)
        higher = bool(table.loc[table["measure"] == measure, "higher_is_similar"].iloc[0])
        cells = [
            [_cell(values.iat[i, j], status.iat[i, j], digits) for j in range(values.shape[1])]
            for i in range(values.shape[0])
        ]
        width = max(
            [len(c) for row in cells for c in row]
            + [len(str(c)) for c in values.columns]
            + [digits + 2]
        )
        corner = "A \\ B"
        left = max(len(corner), *(len(str(r)) for r in values.index))
        lines.append("")
        lines.append(f"{measure} ({_direction(measure, higher)})")
        lines.append(
            f"{corner:<{left}}  " + "  ".join(f"{str(c):>{width}}" for c in values.columns)
        )
        for name, row in zip(values.index, cells, strict=True):
            lines.append(f"{str(name):<{left}}  " + "  ".join(f"{c:>{width}}" for c in row))
        for st in set(status.to_numpy().ravel()) - {"ok"}:
            footnotes[st] = _explain(st)
    if footnotes:
        lines.append("")
        lines.extend(footnotes[k] for k in sorted(footnotes))
    return "\n".join(lines)


def _cell(value: float, status: str, digits: int) -> str:
    if np.isfinite(value):
        return f"{value:.{digits}f}" + ("*" if status == "degenerate" else "")
    return STATUS_MARKS.get(status, "nan")


def _explain(status: str) -> str:
    return {
        "degenerate": (
            "deg / *: degenerate CCA (rank(X) + rank(Y) > samples: some correlations are 1 by "
            "construction); use more images, conv_mode spatial or svcca"
        ),
        "skipped": (
            "n/a: the measure cannot compare these layers (see the reason column of the CSV)"
        ),
        "undefined": (
            "undef: the measure is undefined on this data, e.g. a layer constant on the probe (see "
            "reason)"
        ),
    }.get(status, f"{status}: see the reason column")


def plot_layer_heatmaps(
    table, output: str | Path, *, title: str | None = None, annotate: bool | None = None
) -> Path:
    """Layer x layer heatmaps, one panel per measure.

    The colour map is direction-aware: bright (yellow) always means *more alike*, so distances use
    the reversed map; colour limits are the measure's range where it is finite. Empty cells are grey
    and labelled with why (``deg``, ``n/a``, ``undef``); flagged degenerate values carry a star.
    """
    plt = pyplot()

    measures = _order(table["measure"])
    if not measures:
        raise InputError("the table has no rows to plot")
    n_a, n_b = table["layer_a"].nunique(), table["layer_b"].nunique()
    if annotate is None:
        annotate = n_a * n_b <= 144
    ncols = min(3, len(measures))
    nrows = -(-len(measures) // ncols)
    panel_w, panel_h = 1.9 + 0.55 * n_b, 1.6 + 0.45 * n_a
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_w * ncols, panel_h * nrows + 0.6), squeeze=False
    )
    for ax, measure in zip(axes.ravel(), measures, strict=False):
        values, status = layer_matrix(table, measure), _status_matrix(table, measure)
        info = get_measure(measure)
        higher = bool(table.loc[table["measure"] == measure, "higher_is_similar"].iloc[0])
        low, high = info.range
        finite = values.to_numpy()[np.isfinite(values.to_numpy())]
        if not np.isfinite(high):
            high = float(finite.max()) if finite.size and finite.max() > low else low + 1.0
        cmap = plt.get_cmap("viridis" if higher else "viridis_r").with_extremes(bad="#d9d9d9")
        image = ax.imshow(
            np.ma.masked_invalid(values.to_numpy(dtype=float)),
            cmap=cmap,
            vmin=low,
            vmax=high,
            interpolation="nearest",
            aspect="auto",
        )
        ax.set_xticks(
            range(values.shape[1]), list(values.columns), rotation=60, ha="right", fontsize=7
        )
        ax.set_yticks(range(values.shape[0]), list(values.index), fontsize=7)
        ax.set_xlabel("model B layer", fontsize=8)
        ax.set_ylabel("model A layer", fontsize=8)
        ax.set_title(measure, fontsize=9)
        bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
        bar.set_label(("higher" if higher else "lower") + " = more alike", fontsize=7)
        bar.ax.tick_params(labelsize=6)
        if annotate:
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    v = values.iat[i, j]
                    text = _cell(v, status.iat[i, j], 2)
                    shade = (v - low) / (high - low) if np.isfinite(v) and high > low else 0.5
                    bright = shade > 0.6 if higher else shade < 0.4
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="black" if (not np.isfinite(v) or bright) else "white",
                    )
    for ax in axes.ravel()[len(measures) :]:
        ax.axis("off")
    if title is None and "model_a" in table:
        title = f"A: {table['model_a'].iloc[0]}   B: {table['model_b'].iloc[0]}"
    subtitle = (
        f"conv_mode {table['conv_mode'].iloc[0]}; {table['sampling'].iloc[0]}"
        if "conv_mode" in table
        else ""
    )
    fig.suptitle("\n".join(t for t in (title, subtitle) if t), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)


# ---------------------------------------------------------------------------------------------
# Same-layer summary across pairs


def matched_layers(layers_a: list[str], layers_b: list[str]) -> tuple[list[str], str]:
    """Model B's counterpart of each of A's layers, and how it was matched.

    The same list on both sides (same architecture and selection): the same layer (``same_name``).
    Otherwise by relative depth among the chosen layers (``relative_depth``): A's i-th of n_a is
    matched to B's layer nearest to i/(n_a-1) of the way through B's list, so the first and last
    chosen layers always meet.
    """
    if layers_a == layers_b:
        return list(layers_b), "same_name"
    depth_b = np.linspace(0.0, 1.0, len(layers_b)) if len(layers_b) > 1 else np.ones(1)
    out = []
    for d in _depths(len(layers_a)):
        out.append(layers_b[int(np.argmin(np.abs(depth_b - d)))])
    return out, "relative_depth"


def _depths(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n) if n > 1 else np.ones(1)


def same_layer_summary(tables: Mapping[str, pd.DataFrame]):
    """Per pair, measure and layer of model A: the value at B's matching layer (``matched_layers``),
    plus the most alike layer of B among its ``ok`` values (``best_layer_b``, ``best_value``; by the
    measure's direction)."""
    import pandas as pd

    records = []
    for pair, table in tables.items():
        layers_a, layers_b = _order(table["layer_a"]), _order(table["layer_b"])
        partners, match = matched_layers(layers_a, layers_b)
        depths = _depths(len(layers_a))
        for measure in _order(table["measure"]):
            rows = table[table["measure"] == measure].set_index(["layer_a", "layer_b"])
            higher = bool(rows["higher_is_similar"].iloc[0])
            for layer_a, layer_b, depth in zip(layers_a, partners, depths, strict=False):
                cell = rows.loc[(layer_a, layer_b)]
                # Only trustworthy values compete: a flagged degenerate CCA of ~1 would always
                # "win".
                row_a = rows.loc[layer_a]
                candidates = row_a.loc[row_a["status"] == "ok", "value"].dropna()
                best = (
                    (candidates.idxmax() if higher else candidates.idxmin())
                    if len(candidates)
                    else ""
                )
                records.append(
                    {
                        "pair": pair,
                        "model_a": table["model_a"].iloc[0] if "model_a" in table else "",
                        "model_b": table["model_b"].iloc[0] if "model_b" in table else "",
                        "measure": measure,
                        "higher_is_similar": higher,
                        "layer_a": layer_a,
                        "layer_b": layer_b,
                        "depth": round(float(depth), 6),
                        "match": match,
                        "value": cell["value"],
                        "status": cell["status"],
                        "reason": cell.get("reason", ""),
                        "best_layer_b": best,
                        "best_value": candidates[best] if best != "" else float("nan"),
                        "conv_mode": cell.get("conv_mode", ""),
                        "samples": cell.get("samples", np.nan),
                    }
                )
    return pd.DataFrame.from_records(records, columns=list(SUMMARY_COLUMNS))


def summarise_similarity(csv_paths: Iterable[str | Path], output: str | Path | None = None):
    """``same_layer_summary`` of pair tables named by their file stems; written as CSV if
    ``output``."""
    paths = [Path(p) for p in csv_paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise InputError(f"pair tables must have distinct file names, got {stems}")
    summary = same_layer_summary({p.stem: read_table(p) for p in paths})
    if output is not None:
        write_table(summary, output)
    return summary
