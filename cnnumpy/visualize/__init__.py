"""See what the network sees: feature maps, filters, occlusion, saliency, Grad-CAM.

Each function returns its array (NumPy only) and, given ``save="file.png"``, writes a
PNG (matplotlib, Agg backend, imported only then)::

    from cnnumpy.visualize import grad_cam, occlusion, saliency

    heat = occlusion(model, x_test[0], y_test[0], patch=8, stride=2, save="occ.png")

The math lives in :mod:`cnnumpy.visualize.maps`, the drawing in
:mod:`cnnumpy.visualize.plots`.
"""

from cnnumpy.visualize.maps import grad_cam_target, resize_bilinear
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
    "confusion_matrix",
    "feature_maps",
    "filters",
    "grad_cam",
    "grad_cam_target",
    "misclassified",
    "occlusion",
    "resize_bilinear",
    "saliency",
    "training_curves",
]
