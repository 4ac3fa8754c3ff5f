"""Objects for local blur synthesis (LODE/BladeNet, Sec. 4.1): segmented objects from PASCAL VOC 2012 or
COCO, cropped with a soft alpha, kept in the object store ``OUT/objects.h5`` and moved by the ``local`` recipe.

``patch`` (the object type and the rules that keep or skip one), ``voc`` and ``coco`` (the readers; pycocotools
is imported only when COCO is read), ``store`` (the bank file), ``build`` (writing it for a run) and ``splits``
(which objects each split uses, opened once per worker process).
"""
