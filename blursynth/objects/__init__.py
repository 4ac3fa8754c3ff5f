"""Object bank for local blur synthesis (LODE/BladeNet, Sec. 4.1): segmented objects from PASCAL VOC 2012
or COCO, cropped with a soft alpha, to be pasted on sharp backgrounds and moved by the ``local`` recipe.

``voc`` and ``coco`` (pycocotools) are imported only when their builder runs.
"""

from blursynth.objects.bank import MIN_AREA, ObjectBank, ObjectPatch, bank_from_coco, bank_from_voc, merge

__all__ = ["MIN_AREA", "ObjectBank", "ObjectPatch", "bank_from_coco", "bank_from_voc", "merge"]
