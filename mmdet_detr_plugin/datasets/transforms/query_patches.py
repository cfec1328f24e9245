"""UP-DETR's query patches (Dai et al. 2021, section 3.1): random crops of
the image that the detector must find again."""
import logging
import math
from typing import Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torchvision.transforms.v2 as T
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes


@TRANSFORMS.register_module()
class PluginRandomQueryPatches(BaseTransform):
    """Crop M random patches, augment them and make their boxes the targets.

    Patch sides are drawn uniformly in ``[min_size, W - min_size]`` (width)
    and ``[min_size, H - min_size]`` (height), positions uniformly where the
    patch fits, all from numpy's global generator (seeded per worker by
    mmengine). Each crop is resized to ``patch_size`` x ``patch_size`` and
    augmented as the reference: colour jitter (brightness, contrast,
    saturation 0.4, hue 0.1) with probability 0.8, grayscale with 0.2 and a
    Gaussian blur (sigma in [0.1, 2]) with 0.5, drawn per patch (torch's
    generator). Put it before any resize, which then scales the boxes; do not
    flip the image after it (the patches would no longer match).

    Required keys: ``img`` [H, W, 3] uint8 (any channel order; the patches
    keep it), ``img_path`` (for messages).

    Added keys: ``gt_bboxes`` (``HorizontalBoxes`` [M, 4], xyxy pixels),
    ``gt_bboxes_labels`` [M] zeros (class "patch"), ``gt_ignore_flags`` [M]
    False, ``query_patches`` [M, P, P, 3] uint8.

    An image narrower or lower than ``2 * min_size`` has no valid patch: it is
    skipped with a warning naming it (the transform returns None; mmengine's
    data set then draws another image in training and raises in test mode).

    Args:
        num_patches (int): M. Defaults to 10.
        min_size (int): smallest patch side, and the margin: a side is at most
            the image side minus ``min_size``. Defaults to 8.
        patch_size (int): side P of the resized patches. Defaults to 128.
        color_jitter (sequence[float]): brightness, contrast, saturation,
            hue. Defaults to (0.4, 0.4, 0.4, 0.1).
        jitter_prob (float): Defaults to 0.8.
        gray_prob (float): Defaults to 0.2.
        blur_prob (float): Defaults to 0.5.
        blur_sigma (tuple[float, float]): Defaults to (0.1, 2.0).
    """

    def __init__(self, num_patches: int = 10, min_size: int = 8, patch_size: int = 128,
                 color_jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
                 jitter_prob: float = 0.8, gray_prob: float = 0.2, blur_prob: float = 0.5,
                 blur_sigma: Tuple[float, float] = (0.1, 2.0)) -> None:
        for name, value in (('num_patches', num_patches), ('min_size', min_size),
                            ('patch_size', patch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'PluginRandomQueryPatches.{name} must be a positive int, '
                                 f'got {value!r}')
        for name, value in (('jitter_prob', jitter_prob), ('gray_prob', gray_prob),
                            ('blur_prob', blur_prob)):
            if not 0 <= value <= 1:
                raise ValueError(f'PluginRandomQueryPatches.{name} must be in [0, 1], '
                                 f'got {value!r}')
        self.num_patches = num_patches
        self.min_size = min_size
        self.patch_size = patch_size
        # kernel covering +-3 sigma of the largest blur, odd, at most the patch
        kernel = 2 * math.ceil(3 * blur_sigma[1]) + 1
        kernel = min(kernel, patch_size if patch_size % 2 else patch_size - 1)
        self.augment = T.Compose([
            T.RandomApply([T.ColorJitter(*color_jitter)], p=jitter_prob),
            T.RandomGrayscale(p=gray_prob),
            T.RandomApply([T.GaussianBlur(kernel, sigma=blur_sigma)], p=blur_prob),
        ])

    def sample_boxes(self, height: int, width: int) -> np.ndarray:
        """[M, 4] float32 xyxy patch boxes inside a ``height`` x ``width`` image."""
        lo = self.min_size
        w = np.random.randint(lo, width - lo + 1, size=self.num_patches)
        h = np.random.randint(lo, height - lo + 1, size=self.num_patches)
        x = (np.random.rand(self.num_patches) * (width - w + 1)).astype(np.int64)
        y = (np.random.rand(self.num_patches) * (height - h + 1)).astype(np.int64)
        return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)

    def crop(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Resized and augmented crops: [M, P, P, 3] uint8, ``img``'s channel order."""
        out = np.empty((len(boxes), self.patch_size, self.patch_size, 3), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
            patch = mmcv.imresize(img[y1:y2, x1:x2], (self.patch_size, self.patch_size),
                                  interpolation='bilinear')
            # torchvision's colour ops assume RGB: flip the channels around them
            t = torch.from_numpy(np.ascontiguousarray(patch[..., ::-1])).permute(2, 0, 1)
            out[i] = self.augment(t).permute(1, 2, 0).numpy()[..., ::-1]
        return out

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        height, width = img.shape[:2]
        if min(height, width) < 2 * self.min_size:
            print_log(f'{results.get("img_path", "an image")}: {width}x{height} is smaller '
                      f'than 2 * min_size ({2 * self.min_size} px) on a side, no query patch '
                      'fits: skipped', logger='current', level=logging.WARNING)
            return None
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'{results.get("img_path", "an image")}: PluginRandomQueryPatches '
                             f'needs a [H, W, 3] uint8 image, got {img.dtype} {img.shape} '
                             '(load it with color_type="color", to_float32=False)')
        boxes = self.sample_boxes(height, width)
        results['query_patches'] = self.crop(img, boxes)
        results['gt_bboxes'] = HorizontalBoxes(boxes)
        results['gt_bboxes_labels'] = np.zeros(self.num_patches, dtype=np.int64)
        results['gt_ignore_flags'] = np.zeros(self.num_patches, dtype=bool)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_patches={self.num_patches}, '
                f'min_size={self.min_size}, patch_size={self.patch_size})')


@TRANSFORMS.register_module()
class PluginPackQueryPatchInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also packs ``query_patches`` into the
    data sample, as ``query_patches`` [M, 3, P, P] uint8 (moved to the
    device with the batch by the data preprocessor)."""

    def transform(self, results: dict) -> dict:
        if 'query_patches' not in results:
            raise KeyError('PluginPackQueryPatchInputs: no query_patches in the results; put '
                           'PluginRandomQueryPatches earlier in the pipeline')
        patches = results['query_patches']
        packed = super().transform(results)
        packed['data_samples'].query_patches = torch.from_numpy(
            np.ascontiguousarray(patches.transpose(0, 3, 1, 2)))
        return packed
