"""Label sources that run a teacher model over a manifest's audio (``build_dataset.py`` names).

Same contract as ``datamodules.sources.registry.SOURCES`` (``"module:function"``, imported lazily,
so TensorFlow loads only when its teacher runs); they live here because they use the model side.
"""

from __future__ import annotations

TEACHER_SOURCES: dict[str, str] = {
    "musicnn": "lightning_module.teacher.labelling:build",
    "teacher": "lightning_module.teacher.outputs:build",
}
