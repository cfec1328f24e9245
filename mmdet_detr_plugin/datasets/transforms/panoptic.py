"""Panoptic targets for DETR: every segment, thing or stuff, is one box + mask.

mmdet's ``LoadPanopticAnnotations`` gives boxes and labels for things only
(from ``instances``) and masks for non-crowd things only, the targets of
Panoptic FPN / MaskFormer-style heads. DETR's panoptic training (Carion et
al., 2020, section 4.4; the reference ``CocoPanoptic`` data set) instead
predicts things and stuff alike as boxes with masks, so its targets are all
the segments of the panoptic PNG, crowd things included.
"""
from typing import List, Optional, Tuple

import mmcv
import numpy as np
import torch
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import get_box_type
from mmdet.structures.mask import BitmapMasks
from mmengine.fileio import get

PANOPTICAPI_INSTALL = 'run bash scripts/install.sh, or pip install --no-deps panopticapi-lite'


def require_panopticapi(what: str) -> None:
    """Raise one ImportError naming the install step when panopticapi is missing."""
    try:
        import panopticapi  # noqa: F401
    except ImportError as err:
        raise ImportError(f'{what} needs panopticapi, which is not installed: '
                          f'{PANOPTICAPI_INSTALL}') from err


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of binary masks, pixel convention: a mask covering columns
    3..5 and rows 1..2 gives ``[3, 1, 6, 3]`` (x2 = max_x + 1).

    Args:
        masks (np.ndarray): [M, H, W], every mask non-empty.

    Returns:
        np.ndarray: float32 [M, 4], (x1, y1, x2, y2) in pixels.
    """
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, mask in enumerate(masks):
        cols, rows = np.nonzero(mask.any(axis=0))[0], np.nonzero(mask.any(axis=1))[0]
        boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes


@TRANSFORMS.register_module()
class PluginLoadPanopticAnnotations(LoadPanopticAnnotations):
    """Load every segment of a panoptic PNG as one instance (DETR's targets).

    The PNG is read once; segment ``k`` of ``results['segments_info']``
    (things, crowd things and stuff, in that list's order) becomes instance
    ``k``.

    Required Keys: ``seg_map_path``, ``segments_info`` (``id``, ``category``),
    ``ori_shape`` or ``height`` / ``width``.

    Added Keys:

    - gt_masks (BitmapMasks): [M, H, W] uint8, one mask per segment.
    - gt_bboxes (HorizontalBoxes): [M, 4] float32, tight (x1, y1, x2, y2) box
      of the mask, x2 = max_x + 1.
    - gt_bboxes_labels (np.ndarray): int64 [M], the contiguous ``category``
      (things ``0..T-1``, stuff ``T..T+S-1`` as in the data set's classes).
    - gt_ignore_flags (np.ndarray): bool [M], all False.
    - gt_seg_map (np.ndarray): [H, W], category per pixel, 255 for void, the
      same values and dtype as mmdet's loader (only when ``with_seg``).

    A result without ``seg_map_path`` (inference without ground truth) passes
    through unchanged.

    Args:
        with_bbox, with_label, with_mask, with_seg (bool): Which keys to add.
            Defaults to mmdet's (all True).
        box_type (str): Box type of ``gt_bboxes``; None keeps an array.
        imdecode_backend (str): Backend of :func:`mmcv.imfrombytes`.
        backend_args (dict, optional): File backend arguments.

    Raises:
        ImportError: If panopticapi is missing (the message names the install).
        ValueError: If the PNG does not match its image or its JSON entry
            (the message names the PNG and, when known, the annotation file).
    """

    def __init__(self,
                 with_bbox: bool = True,
                 with_label: bool = True,
                 with_mask: bool = True,
                 with_seg: bool = True,
                 box_type: Optional[str] = 'hbox',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        require_panopticapi('PluginLoadPanopticAnnotations')
        super().__init__(with_bbox=with_bbox, with_label=with_label, with_mask=with_mask,
                         with_seg=with_seg, box_type=box_type,
                         imdecode_backend=imdecode_backend, backend_args=backend_args)

    def _read_ids(self, results: dict) -> np.ndarray:
        """Decode the PNG at ``seg_map_path``: int32 [H, W] segment ids, 0 void."""
        png = mmcv.imfrombytes(get(results['seg_map_path'], backend_args=self.backend_args),
                               flag='color', channel_order='rgb',
                               backend=self.imdecode_backend)  # uint8 [H, W, 3]
        return self.rgb2id(png)

    @staticmethod
    def _where(results: dict) -> str:
        ann_file = results.get('ann_file')
        return f"panoptic PNG {results['seg_map_path']}" + (
            f' (annotation file {ann_file}, image id {results.get("img_id")})'
            if ann_file else '')

    def _check(self, results: dict, ids: np.ndarray, segment_ids: List[int]) -> None:
        """One clear error when the PNG disagrees with its image or JSON entry."""
        where = self._where(results)
        shape: Tuple[int, int] = tuple(results.get('ori_shape') or
                                       (results['height'], results['width']))
        if ids.shape != shape:
            raise ValueError(f'{where}: the PNG is {ids.shape[0]}x{ids.shape[1]} (HxW) but '
                             f'its image is {shape[0]}x{shape[1]}')
        in_png = set(np.unique(ids).tolist()) - {0}
        missing = [i for i in segment_ids if i not in in_png]
        if missing:
            raise ValueError(f'{where}: segments_info lists segment ids {missing} that no '
                             'pixel of the PNG has; the PNG does not match its JSON')
        unlisted = sorted(in_png - set(segment_ids))
        if unlisted:
            raise ValueError(f'{where}: the PNG has segment ids {unlisted} that segments_info '
                             'does not list; the PNG does not match its JSON')

    def transform(self, results: dict) -> dict:
        """Add the keys listed in the class docstring to ``results``."""
        if results.get('seg_map_path') is None:
            return results
        ids = self._read_ids(results)  # [H, W]
        segments = results['segments_info']
        segment_ids = [s['id'] for s in segments]
        self._check(results, ids, segment_ids)
        h, w = ids.shape
        masks = ids[None] == np.array(segment_ids, dtype=ids.dtype).reshape(-1, 1, 1)
        labels = np.array([s['category'] for s in segments], dtype=np.int64)  # [M]
        if self.with_bbox:
            boxes = masks_to_boxes(masks)  # [M, 4] xyxy
            if self.box_type is not None:
                boxes = get_box_type(self.box_type)[1](boxes, dtype=torch.float32)
            results['gt_bboxes'] = boxes
            results['gt_ignore_flags'] = np.zeros(len(segments), dtype=bool)
        if self.with_label:
            results['gt_bboxes_labels'] = labels
        if self.with_mask:
            results['gt_masks'] = BitmapMasks(masks.astype(np.uint8), h, w)
        if self.with_seg:
            # mmdet's values and dtype: void 255, else the segment's category
            seg = np.zeros_like(ids) + 255
            for mask, label in zip(masks, labels):
                seg = np.where(mask, int(label), seg)
            results['gt_seg_map'] = seg
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
                f'with_label={self.with_label}, with_mask={self.with_mask}, '
                f'with_seg={self.with_seg}, box_type={self.box_type!r}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')
