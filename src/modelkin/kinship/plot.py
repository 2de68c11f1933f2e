"""The family trees drawn: one panel per family of two or more models."""

from __future__ import annotations

import math
from pathlib import Path

from ..ids import ModelIdError, short_label
from ..plotting import pyplot, save_figure


def _label(model: str) -> str:
    try:
        return short_label(model)
    except ModelIdError:  # a name that is no model id (a user's file name)
        return model


def _layout(members: list[str], tree_parent: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Depth from the root downwards; leaves spread evenly, parents above their children."""
    children: dict[str, list[str]] = {m: [] for m in members}
    roots = []
    for m in members:
        parent = tree_parent.get(m) or ""
        if parent in children:
            children[parent].append(m)
        else:
            roots.append(m)
    positions: dict[str, tuple[float, float]] = {}
    next_x = [0.0]

    def place(node: str, depth: int) -> float:
        kids = sorted(children[node])
        if not kids:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(k, depth + 1) for k in kids]
            x = sum(xs) / len(xs)
        positions[node] = (x, -depth)
        return x

    for root in sorted(roots):
        place(root, 0)
    return positions


def plot_family_trees(edges_csv: str | Path, families_csv: str | Path, output: str | Path) -> Path:
    """One panel per family: models as labelled points (the tree's root on top), tree edges as
    arrows from parent to child where the direction is decided and as dashed lines where not,
    coloured by the method with the strongest evidence (smallest p-value)."""
    import pandas as pd

    plt = pyplot()
    edges = pd.read_csv(edges_csv, keep_default_na=False)
    members = pd.read_csv(families_csv, keep_default_na=False)
    groups = [
        (name, sorted(frame["model"]))
        for name, frame in members.groupby("family")
        if len(frame) > 1
    ]
    singletons = int((members.groupby("family").size() == 1).sum())
    methods = sorted({m for m in edges.get("strongest", []) if m})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    n = max(len(groups), 1)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 4.5 * rows), squeeze=False)
    tree_parent = dict(zip(members["model"], members["tree_parent"], strict=True))
    for ax, (name, group) in zip(axes.flat, groups, strict=False):
        pos = _layout(group, tree_parent)
        inside = edges[(edges["family"] == name) & (edges["in_tree"].astype(str) == "True")]
        for edge in inside.to_dict("records"):
            a, b = edge["model_a"], edge["model_b"]
            if tree_parent.get(a) == b:
                a, b = b, a
            colour = colours.get(edge["strongest"], "grey")
            (x0, y0), (x1, y1) = pos[a], pos[b]
            directed = str(edge["directed"]) == "True"
            ax.annotate(
                "", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "-|>" if directed else "-", "color": colour,
                            "linestyle": "-" if directed else "--", "lw": 1.6,
                            "shrinkA": 8, "shrinkB": 8},
            )  # fmt: skip
            if edge["confidence"] != "":
                ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{float(edge['confidence']):+.2f}",
                        fontsize=6, color=colour, ha="center")  # fmt: skip
        for model, (x, y) in pos.items():
            ax.plot(x, y, "o", color="black", ms=5)
            ax.text(x + 0.06, y + 0.06, _label(model), fontsize=6, ha="left", va="bottom")
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.5, max(xs) + 1.5)
        ax.set_ylim(min(ys) - 0.8, max(ys) + 0.4)
        ax.set_title(f"family of {_label(name)} ({len(group)} models)", fontsize=9)
        ax.axis("off")
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    if not groups:
        axes.flat[0].text(0.5, 0.5, "no family of two or more models", ha="center")
    handles = [plt.Line2D([], [], color=c, lw=2, label=m) for m, c in colours.items()]
    handles += [
        plt.Line2D([], [], color="black", lw=1.5, label="direction decided"),
        plt.Line2D([], [], color="black", lw=1.5, ls="--", label="undirected"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               title=f"strongest evidence; {singletons} models without relatives not drawn",
               title_fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, output)
