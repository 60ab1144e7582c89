"""Plotly figures for the medgap book that work in the static HTML and in Colab.

Every figure takes plain arrays and tables (embeddings as (N, D) arrays,
training history as a list of dicts, sweeps as a table), not model objects.
Interactions that teach something (dropdowns, sliders, animation frames) use
values stored in the figure, so they work in the static book; the live
retraining panels in :mod:`medgap_utils.viz.panels` need a kernel and fall
back to a static figure elsewhere.
"""

from medgap_utils.viz.compare import comparison_figure
from medgap_utils.viz.embeddings import projection_figure
from medgap_utils.viz.palette import MODALITY_COLORS, MODALITY_SYMBOLS, OKABE_ITO
from medgap_utils.viz.panels import Control, retrain_panel
from medgap_utils.viz.projections import Projection, project
from medgap_utils.viz.sphere import sphere_figure
from medgap_utils.viz.sweeps import gap_shift_figure, sweep_figure
from medgap_utils.viz.training import training_animation_figure, training_curves_figure

__all__ = [
    "MODALITY_COLORS",
    "MODALITY_SYMBOLS",
    "OKABE_ITO",
    "Control",
    "Projection",
    "comparison_figure",
    "gap_shift_figure",
    "project",
    "projection_figure",
    "retrain_panel",
    "sphere_figure",
    "sweep_figure",
    "training_animation_figure",
    "training_curves_figure",
]
