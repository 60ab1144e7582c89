"""Live retraining panels (ipywidgets) for Colab, with static plotly fallbacks.

A panel calls a ``retrain`` function the chapter passes in, so this module
does not import the training code. The function takes the panel's control
values as keyword arguments (``lambda_atp``, ``lambda_cu``, ``temperature``
by default) and returns a dict with ``image_embeddings`` and
``text_embeddings`` (N, D), and optionally ``metrics``, a dict of metric
name -> float.

The static book has no kernel behind its widgets, so outside Colab
:func:`retrain_panel` returns the ``fallback`` figure (typically a
:func:`medgap_utils.viz.sweep_figure` of precomputed runs) instead.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from medgap_utils.book import in_colab
from medgap_utils.viz.embeddings import projection_figure

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Control:
    """One slider: its range, step, initial value and label.

    With ``log=True`` the slider moves in powers of ten: ``minimum``,
    ``maximum`` and ``step`` are exponents (base 10) and ``value`` is the
    actual initial value.
    """

    minimum: float
    maximum: float
    step: float
    value: float
    description: str
    log: bool = False


DEFAULT_CONTROLS: dict[str, Control] = {
    "lambda_atp": Control(0.0, 2.0, 0.1, 0.0, "λ_ATP"),
    "lambda_cu": Control(0.0, 2.0, 0.1, 0.0, "λ_CU"),
    "temperature": Control(-2.0, 0.0, 0.1, 0.07, "τ", log=True),
}


def retrain_panel(
    retrain: Callable[..., Mapping[str, Any]],
    fallback: go.Figure,
    *,
    controls: Mapping[str, Control] | None = None,
    live: bool | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    method: str = "pca",
) -> Any:
    """Return a live retraining panel in Colab, else the static ``fallback`` figure.

    The live panel has one slider per control, a "Retrain" button, the
    embedding map of the last run and a table of every run's control values
    and metrics. ``live=None`` means live only in Colab; pass ``True`` to get
    the panel in any Jupyter front end with ipywidgets.

    Raises:
        TypeError: if ``retrain`` is not callable or ``fallback`` is not a
            plotly figure.
        ValueError: if a control's range is empty.
    """
    if not callable(retrain):
        raise TypeError(f"retrain must be a callable returning embeddings, got {type(retrain).__name__}.")
    if not isinstance(fallback, go.Figure):
        raise TypeError(
            f"fallback must be a plotly Figure shown in the static book, got {type(fallback).__name__}; "
            f"build one with medgap_utils.viz.sweep_figure from precomputed runs."
        )
    controls = dict(DEFAULT_CONTROLS if controls is None else controls)
    for name, control in controls.items():
        if not control.minimum < control.maximum or control.step <= 0:
            raise ValueError(f"control {name!r} needs minimum < maximum and step > 0, got {control}.")
    if not (in_colab() if live is None else live):
        return fallback
    return RetrainPanel(retrain, controls, labels=labels, captions=captions, method=method).widget


class RetrainPanel:
    """The live panel behind :func:`retrain_panel`; ``widget`` is what the notebook displays.

    Attributes:
        widget: the ``ipywidgets.VBox`` holding sliders, button, status and output.
        sliders: control name -> slider widget.
        runs: one dict per finished run: the control values and the metrics.
        figure: the embedding map of the last run, or ``None``.
    """

    def __init__(
        self,
        retrain: Callable[..., Mapping[str, Any]],
        controls: Mapping[str, Control],
        *,
        labels: Mapping[str, Sequence[str]] | None = None,
        captions: Sequence[str] | None = None,
        method: str = "pca",
    ) -> None:
        import ipywidgets as widgets

        self._retrain = retrain
        self._labels = labels
        self._captions = captions
        self._method = method
        self.runs: list[dict[str, Any]] = []
        self.figure: go.Figure | None = None

        self.sliders = {}
        for name, control in controls.items():
            options = {"min": control.minimum, "max": control.maximum, "step": control.step,
                       "value": control.value, "description": control.description, "continuous_update": False}
            if control.log:
                self.sliders[name] = widgets.FloatLogSlider(base=10, readout_format=".3g", **options)
            else:
                self.sliders[name] = widgets.FloatSlider(readout_format=".2f", **options)
        self.button = widgets.Button(description="Retrain", button_style="primary", icon="refresh")
        self.button.on_click(lambda _: self.run())
        self.status = widgets.HTML("Set the weights and press Retrain.")
        self.output = widgets.Output()
        self.table = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox(list(self.sliders.values())),
            widgets.HBox([self.button, self.status]),
            self.output,
            self.table,
        ])

    def values(self) -> dict[str, float]:
        """Return the current control values (actual values, also for log sliders)."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

    def run(self) -> None:
        """Retrain with the current control values and show the result.

        An exception from ``retrain`` or from drawing is logged and shown in
        the status line, because a widget callback has no caller to raise to.
        """
        from IPython.display import display

        values = self.values()
        self.button.disabled = True
        self.status.value = "Training …"
        try:
            result = self._retrain(**values)
            metrics = {key: float(value) for key, value in dict(result.get("metrics") or {}).items()}
            self.figure = projection_figure(
                result["image_embeddings"], result["text_embeddings"], self._labels, self._captions,
                method=self._method, title=_run_title(values),
            )
        except Exception as error:  # noqa: BLE001 - reported to the reader, see the docstring
            logger.exception("Retraining with %s failed", values)
            self.status.value = f"<b>Retraining failed:</b> {html.escape(str(error))}"
            return
        finally:
            self.button.disabled = False

        self.runs.append({**values, **metrics})
        self.status.value = f"Run {len(self.runs)} finished."
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)
        self.table.value = runs_table_html(self.runs)


def _run_title(values: Mapping[str, float]) -> str:
    settings = ", ".join(f"{DEFAULT_CONTROLS[name].description if name in DEFAULT_CONTROLS else name} = {value:.3g}"
                         for name, value in values.items())
    return f"Embeddings after retraining ({settings})"


def runs_table_html(runs: Sequence[Mapping[str, float]]) -> str:
    """Return an HTML table with one row per run and one column per key seen."""
    columns: list[str] = []
    for run in runs:
        columns.extend(key for key in run if key not in columns)
    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    rows = []
    for number, run in enumerate(runs, start=1):
        cells = "".join(f"<td>{run[column]:.4g}</td>" if column in run else "<td></td>" for column in columns)
        rows.append(f"<tr><td>{number}</td>{cells}</tr>")
    return f"<table><thead><tr><th>run</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
