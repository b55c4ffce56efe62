"""See what the network sees: feature maps, filters, occlusion, saliency, Grad-CAM.

Each function returns its array (NumPy only) and, given ``save="file.png"``, writes a
PNG (matplotlib, Agg backend, imported only then)::

    from cnnumpy.visualize import grad_cam, occlusion, saliency

    heat = occlusion(model, x_test[0], y_test[0], patch=8, stride=2, save="occ.png")

The math lives in :mod:`cnnumpy.visualize.maps`, the drawing in
:mod:`cnnumpy.visualize.plots`. For char models, :mod:`cnnumpy.visualize.text` colours
a text by the probability of each character and by one hidden unit (HTML), numbers
computed in :mod:`cnnumpy.visualize.text_states`; their training curves are drawn in
bits per character.
"""

from cnnumpy.visualize.maps import grad_cam_target, resize_bilinear
from cnnumpy.visualize.text import (
    char_probabilities,
    hidden_activations,
    text_heat_html,
    write_text_report,
)
from cnnumpy.visualize.views import (
    confusion_matrix,
    feature_maps,
    filters,
    grad_cam,
    misclassified,
    occlusion,
    saliency,
    training_curves,
)

__all__ = [
    "char_probabilities",
    "confusion_matrix",
    "feature_maps",
    "filters",
    "grad_cam",
    "grad_cam_target",
    "hidden_activations",
    "misclassified",
    "occlusion",
    "resize_bilinear",
    "saliency",
    "text_heat_html",
    "training_curves",
    "write_text_report",
]
