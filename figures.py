"""The paper's figures and tables: Figure 2 (class-wise IoU), Figure 3 (qualitative results), Tables 1-2.

Figure 3 draws, for each frame, every stage of Fig. 1 from left to right: the input, the teacher's
masks (their boundaries over the frame), the SBM's pseudo-labels (the argmax of y_hat), the student's
prediction, and the ground truth where there is one. Pseudo-labels and prediction are named with the
same channel -> class mapping, so that a reader sees what the student learnt from its teacher.
"""
import textwrap
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# Figures draw classes in colours a person can tell apart; the dataset's own palette gives Team A and
# Goalkeeper A (and Team B and Goalkeeper B) colours a few units apart. "Coaches & Officials" is grey, not
# the dataset's black: black reads as "nothing here", yet a cluster named so covers real pixels.
DISPLAY_PALETTE = np.array([(230, 25, 75), (250, 190, 212), (0, 130, 200), (60, 180, 75), (240, 50, 230),
                            (128, 128, 128), (145, 30, 180), (255, 225, 25), (245, 130, 48), (70, 240, 240),
                            (128, 0, 0)], dtype=np.uint8)
PAPER_TABLE_1 = [("FCN", 77.84, 92.26), ("PSPNet", 58.46, 83.96), ("SegNet", 69.7, 90.51),
                 ("VGG-UNet", 83.64, 95.02), ("MobileNet-UNet (supervised)", 84.28, 95.36),
                 ("SoccerSAM", 92.33, 97.2)]
PAPER_TABLE_2 = [("SoccerSAM w/o L_sbm", 88.37, 93.54), ("SoccerSAM w/o L_bd", 87.42, 94.8),
                 ("SoccerSAM w/o L_aug", 89.2, 95.4), ("SoccerSAM", 92.33, 97.2)]


def cluster_palette(clusters: int) -> np.ndarray:
    """(K, 3) uint8 colours for unnamed clusters (tab20, repeated past 20)."""
    return (np.asarray(colormaps["tab20"](np.arange(clusters) % 20))[:, :3] * 255).astype(np.uint8)


def as_rgb(image) -> np.ndarray:
    """(3, H, W) float in [0, 1] (numpy or torch) or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    image = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return image


def paint(label, palette: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 in palette; ids outside the palette (e.g. 255) -> white."""
    label = np.asarray(label).astype(np.int64)
    out = np.full(label.shape + (3,), 255, dtype=np.uint8)
    known = (label >= 0) & (label < len(palette))
    out[known] = np.asarray(palette, dtype=np.uint8)[label[known]]
    return out


def mask_boundaries(image, segments) -> np.ndarray:
    """The teacher's masks drawn over the frame: image as in `as_rgb`, segments (H, W) ints (a MaskSet's,
    -1 uncovered) -> (H, W, 3) uint8 with every boundary between segments as a one-pixel line of yellow
    blended over the frame, thin enough to leave the crowd and the players visible."""
    out, segments = as_rgb(image).copy(), np.asarray(segments)
    edge = np.zeros(segments.shape, dtype=bool)
    edge[:, :-1] |= segments[:, 1:] != segments[:, :-1]  # the left pixel of each horizontal change
    edge[:-1] |= segments[1:] != segments[:-1]  # the upper pixel of each vertical change
    out[edge] = (0.4 * out[edge] + 0.6 * np.array([255, 255, 0])).astype(np.uint8)
    return out


def _save(figure: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def plot_classwise_iou(iou: np.ndarray, class_names: list[str], path: str | Path,
                       title: str = "Class-wise IoU") -> None:
    """Figure 2: horizontal bar chart of per-class IoU (fractions, shown in %); nan classes marked n/a."""
    iou = np.asarray(iou, dtype=np.float64)
    figure = Figure(figsize=(7, 0.4 * len(class_names) + 1.4))
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    axes.barh(positions, np.nan_to_num(iou * 100), color="tab:blue")
    for position, value in zip(positions, iou):
        axes.text(0.5 if np.isnan(value) else value * 100 + 0.5, position,
                  "n/a (absent)" if np.isnan(value) else f"{value * 100:.1f}", va="center", fontsize=8)
    axes.set_yticks(positions, class_names)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("IoU (%)")
    # Centred on the figure (the class names make the axes narrower) and wrapped to its width: matplotlib
    # cuts a long title off at the edge.
    figure.suptitle("\n".join(textwrap.fill(line, 90) for line in title.splitlines()), fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def painted_ids(rows: list[dict]) -> list[int]:
    """The ids of Figure 3's painted panels (the (H, W) ones of `plot_qualitative`'s rows), sorted."""
    return sorted({int(i) for row in rows for panel in row.values() if np.asarray(panel).ndim == 2
                   for i in np.unique(panel)})


def plot_qualitative(rows: list[dict], path: str | Path, palette: np.ndarray,
                     titles: list[str] | None = None, class_names: dict[int, str] | None = None,
                     heading: str | None = None, footnote: str | None = None) -> None:
    """Figure 3: one row per frame, one column per stage.

    rows: dicts of panel name -> (H, W, 3) uint8 picture (the input, the masks) or (H, W) ids (pseudo-
    labels, prediction, ground truth: painted in palette, white = unlabelled); every row has the same
    panel names, in the order drawn. titles name the rows; class_names (id -> name) adds a legend of every
    id painted in a panel, "unlabelled" too where white is painted (an id missing from class_names is
    named by its number); heading goes above the grid, footnote (lines split at "\n") under it.
    """
    if not rows or any(list(row) != list(rows[0]) for row in rows):
        raise ValueError(f"got {len(rows)} rows with panels {[list(row) for row in rows]}; pass at least one "
                         "row, every row with the same panels")
    columns = list(rows[0])
    height, width = np.asarray(next(iter(rows[0].values()))).shape[:2]
    legend = []  # (colour, name) of every id painted
    if class_names:
        painted = painted_ids(rows)
        legend = [(palette[i], class_names.get(i, f"id {i}")) for i in painted if 0 <= i < len(palette)]
        if len(legend) < len(painted):
            legend.append(((255, 255, 255), "unlabelled"))
    legend_rows = -(-len(legend) // 6)
    footnote_height = 0.15 * (footnote.count("\n") + 1) + 0.1 if footnote else 0  # inches
    below = 0.3 * legend_rows + footnote_height
    figure = Figure(figsize=(len(columns) * 2 * width / height + 0.5, 2 * len(rows) + below + 0.6))
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        for c, (name, panel) in enumerate(row.items()):
            panel = np.asarray(panel)
            axes[r, c].imshow(panel if panel.ndim == 3 else paint(panel, palette), interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
        if titles is not None:
            axes[r, 0].set_ylabel(titles[r], fontsize=8)
    if heading:
        figure.suptitle(heading, fontsize=9)
    if footnote:
        figure.text(0.5, 0.01, footnote, ha="center", va="bottom", fontsize=7, style="italic")
    if legend:
        handles = [Patch(facecolor=np.asarray(colour) / 255, edgecolor="grey", label=name)
                   for colour, name in legend]
        figure.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False,
                      bbox_to_anchor=(0.5, footnote_height / figure.get_figheight()))
    figure.tight_layout(rect=(0, below / figure.get_figheight(), 1, 0.97 if heading else 1))
    _save(figure, path)


def markdown_table(rows: list[tuple], columns: list[str]) -> str:
    """Tables 1-2: rows of cells -> a Markdown table; floats with two decimals."""
    def cell(value) -> str:
        return f"{value:.2f}" if isinstance(value, (float, np.floating)) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]) + "\n"


def results_tables(results: dict, where: str) -> str:
    """Tables 1 and 2 of the paper (its rows) with this run's rows added (a scored results.json): its
    student and, for a label-free run, the SBM's pseudo-labels the student learnt from. A run on the
    synthetic scenes gets a table of its own, since the paper's rows are FSSOD scores."""
    columns = ["method", "mIoU (%)", "FWIoU (%)"]
    dropped = [f"L_{n}" for n in ("sbm", "bd", "aug") if results["lambdas"][n] == 0]
    ours = (f"{results['method']}{' w/o ' + ', '.join(dropped) if dropped else ''}, {results['masks']}",
            results["strict"]["miou"], results["strict"]["fwiou"])
    rows = [ours]
    if "pseudo_labels" in results:
        rows.append((f"the SBM's pseudo-labels it learnt from, {results['masks']}",
                     results["pseudo_labels"]["miou"], results["pseudo_labels"]["fwiou"]))
    if results["data"] == "synthetic":
        return (f"This run ({where}; {results['protocol']}):\n\n{markdown_table(rows, columns)}\n"
                "The synthetic scenes demonstrate the pipeline; they are not FSSOD, so these rows are not "
                "comparable with the paper's Tables 1 and 2 (FSSOD):\n\n"
                + markdown_table([(m, a, b) for m, a, b in PAPER_TABLE_1 + PAPER_TABLE_2[:3]], columns))
    table_1 = [(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_1] + rows
    table_2 = [(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_2] + [ours]
    text = f"Table 1 ({where}; ours: {results['protocol']}):\n\n{markdown_table(table_1, columns)}\n"
    if results["mask_source"] is not None:
        text += f"Table 2 (this run's row):\n\n{markdown_table(table_2, columns)}"
    return text
