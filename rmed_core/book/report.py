"""What a notebook shows under each figure: the command that regenerates it and the provenance
of the run that produced it. The book renders the panel as a collapsible block."""
from __future__ import annotations

import html
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["papermill_command", "provenance_panel", "show_provenance", "glue_figure", "glue_number", "glue_text",
           "glue_values", "glue_claim", "ratio_columns"]


def papermill_command(notebook: str, params: Mapping[str, Any], output: str = "out.ipynb") -> str:
    """The papermill command that reruns ``notebooks/<notebook>.py`` with ``params``.

    >>> papermill_command("theorem", {"opt": "adam", "width": 400})
    'papermill notebooks/theorem.py out.ipynb -p opt adam -p width 400'
    """
    parts = ["papermill", f"notebooks/{notebook}.py", output]
    for key, value in params.items():
        parts += ["-p", key, shlex.quote(str(value))]
    return " ".join(parts)


def provenance_panel(notebook: str, params: Mapping[str, Any],
                     records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """HTML of a collapsible provenance panel (class ``provenance``): the papermill command,
    the parameters, and the provenance record(s) of the run(s) behind a figure. Several records
    are summarised: equal fields once, differing ones as a list, wall times summed."""
    if isinstance(records, Mapping):
        records = [records]
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in records for k in r):
        values = [r.get(key) for r in records]
        if key == "wall_time_s":
            total = sum(v for v in values if v is not None)
            merged["wall time"] = f"{total:.1f} s in all ({len(records)} run{'s' * (len(records) > 1)})"
        else:
            distinct = list(dict.fromkeys(str(v) for v in values))
            merged[key] = distinct[0] if len(distinct) == 1 else ", ".join(distinct)
    rows = [("command", f"<code>{html.escape(papermill_command(notebook, params))}</code>")]
    rows += [("parameters", html.escape(", ".join(f"{k}={v!r}" for k, v in params.items())))]
    rows += [(k, html.escape(str(v))) for k, v in merged.items()]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (f'<details class="provenance"><summary>Provenance: how this figure was made</summary>'
            f'<table class="provenance-table">{body}</table></details>')


def show_provenance(notebook: str, params: Mapping[str, Any],
                    records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Display :func:`provenance_panel` in the notebook (as HTML)."""
    from IPython.display import HTML, display

    display(HTML(provenance_panel(notebook, params, records)))


def glue_figure(name: str, fig: Any) -> None:
    """Glue a matplotlib figure under ``name`` for a ``{glue:figure}`` directive, and close it so
    it is not shown twice."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def glue_number(name: str, value: float, fmt: str = ".3g") -> float:
    """Glue a number under ``name`` (shown nowhere by itself; ``{glue:text}`` cites it) and return
    it. The stored value is the float; the text form uses ``fmt``."""
    from myst_nb import glue

    glue(name, float(value), display=False)
    return float(value)


def glue_text(name: str, text: str) -> str:
    """Glue a short plain-text phrase (a verdict, say) under ``name`` for the ``{glue:text}``
    role -- which, unlike ``{glue:md}``, can also paste it into another page
    (``{glue:text}`notebooks/fig1.py::name```) -- and return it."""
    from myst_nb import glue

    glue(name, str(text), display=False)
    return text


def glue_values(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Glue each value of ``values`` under its key, as it is (a float, an int or a phrase), for the
    ``{glue:text}`` role; returns ``values``."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value, display=False)
    return values


def glue_claim(name: str, result: Any, fields: Sequence[str] = ("ratio", "lower", "upper", "p")) -> None:
    """Glue the numbers of one verdict (a :class:`~rmed_core.study.verdict.Claim`, an
    :class:`~rmed_core.study.verdict.Equivalence` or a row of their tables): each of ``fields``
    under ``name.format(field)``, e.g. ``"fig3_{}_750"`` gives ``fig3_ratio_750``, ..."""
    for field in fields:
        glue_number(name.format(field), getattr(result, field))


def ratio_columns(table, *, interval: str = "95%", digits: int = 2):
    """A table of ratios (columns ``ratio, lower, upper``, and ``p``) for reading: the three as one
    column ``ratio [<interval> interval]`` ("1.23 [1.01, 1.50]"), ``p`` to three decimals, and a
    ``published`` column (when there is one) kept on the first row of each iteration only."""
    out = table.copy()
    label = f"ratio [{interval} interval]"
    out.insert(list(out.columns).index("ratio"), label,
               [f"{r:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for r, lo, hi in zip(out.ratio, out.lower, out.upper)])
    out = out.drop(columns=["ratio", "lower", "upper"])
    if "p" in out:
        out["p"] = out.p.round(3)
    if "published" in out:
        first = ~out.duplicated("published")
        out["published"] = out.published.where(first, "")
    return out
