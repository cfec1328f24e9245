"""mmdet's ``CocoPanopticDataset`` with errors that name the annotation file.

The data it yields is mmdet's, unchanged, plus one key, ``ann_file``, that
lets :class:`PluginLoadPanopticAnnotations` name the JSON in its errors.
What it adds are checks, made before any image is read:

- the annotation file and the ``data_prefix.seg`` folder exist;
- every class of the config is a category of the JSON, thing classes are
  ``isthing: 1`` there and stuff classes ``isthing: 0``, and the JSON lists
  them in the config's order (mmdet numbers labels in the JSON's order, so
  another order would silently mislabel every segment);
- every segment's ``category_id`` is one of the config's classes (mmdet
  itself stops with a bare ``KeyError``).
"""
import os.path as osp
from typing import Dict, List

from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import DATASETS


def _is_local(path: str) -> bool:
    return '://' not in path


@DATASETS.register_module()
class PluginCocoPanopticDataset(CocoPanopticDataset):
    """COCO panoptic data set (mmdet's) with checked files and categories.

    Takes the arguments of mmdet's ``CocoPanopticDataset``. ``metainfo`` must
    give ``classes`` as ``thing_classes + stuff_classes``.

    Raises:
        FileNotFoundError: If ``ann_file`` or ``data_prefix.seg`` is missing.
        ValueError: If the config's classes and the JSON's categories
            disagree; the message names the annotation file and the class.
    """

    def load_data_list(self) -> List[dict]:
        """Check the paths, then load as mmdet does."""
        if _is_local(self.ann_file) and not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ann_file: panoptic annotation file not found: '
                                    f'{self.ann_file}')
        seg_dir = self.data_prefix.get('seg')
        if seg_dir and _is_local(seg_dir) and not osp.isdir(seg_dir):
            raise FileNotFoundError(f'data_prefix.seg: panoptic PNG folder not found: '
                                    f'{seg_dir} (annotation file {self.ann_file})')
        self._categories_checked = False
        return super().load_data_list()

    def _check_categories(self) -> None:
        """The config's classes against the JSON's categories (see module docstring)."""
        cats: Dict[int, dict] = self.coco.cats
        by_name = {c['name']: c for c in cats.values()}
        meta = self.metainfo
        things = set(meta.get('thing_classes', ()))
        for name in meta['classes']:
            if name not in by_name:
                raise ValueError(
                    f'{self.ann_file}: class {name!r} of metainfo.classes is not a category of '
                    f'this file (its categories: {sorted(by_name)}); set metainfo.classes to '
                    'thing_classes + stuff_classes')
            want = int(name in things)
            if int(by_name[name].get('isthing', -1)) != want:
                listed = 'thing_classes' if want else 'stuff_classes'
                raise ValueError(f"{self.ann_file}: category {name!r} has isthing="
                                 f"{by_name[name].get('isthing')} but metainfo lists it in "
                                 f'{listed}')
        json_order = [cats[i]['name'] for i in self.cat_ids]
        if json_order != list(meta['classes']):
            raise ValueError(f'{self.ann_file}: categories are listed in the order {json_order}'
                             f' but metainfo.classes is {list(meta["classes"])}; labels follow '
                             'the file\'s order, so give metainfo.classes in that order')

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing, after checking the segments' categories."""
        if not getattr(self, '_categories_checked', False):
            self._check_categories()
            self._categories_checked = True
        img_info = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:
            if ann['image_id'] == img_info['img_id'] and ann['category_id'] not in self.cat2label:
                cat = self.coco.cats.get(ann['category_id'], {}).get('name', 'not in categories')
                raise ValueError(
                    f"{self.ann_file}: segment {ann['id']} of image {img_info['file_name']} has "
                    f"category_id {ann['category_id']} ({cat}), which is not among "
                    f'metainfo.classes ({len(self.cat2label)} classes)')
        data_info = super().parse_data_info(raw_data_info)
        data_info['ann_file'] = self.ann_file
        return data_info
