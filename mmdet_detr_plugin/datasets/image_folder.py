"""A data set of unlabeled images: every image file under a folder."""
import os
import os.path as osp
from typing import Any, List, Optional, Sequence

from mmengine.dataset import BaseDataset

from mmdet.registry import DATASETS

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class PluginImageFolderDataset(BaseDataset):
    """All images under ``data_root/data_prefix['img']``, at any depth, with
    no labels (ImageNet's ``train/`` folder, a camera dump...).

    Files are found by extension (case-insensitive), listed in sorted path
    order so that every process sees the same list; symbolic links are
    followed. Each item is ``img_path``, ``img_id`` (its index) and no
    instances: a pipeline makes the targets (UP-DETR's
    ``PluginRandomQueryPatches``). It works with mmengine's samplers and
    ``tools/train.py`` as any ``BaseDataset``.

    Args:
        data_root (str): root folder. Defaults to ''.
        data_prefix (dict): ``img``, the images' folder under ``data_root``.
            Defaults to ``dict(img='')``.
        extensions (sequence[str]): file name endings taken as images.
            Defaults to :data:`IMAGE_EXTENSIONS`.
        **kwargs: the rest of ``BaseDataset``'s arguments (``pipeline``,
            ``indices``, ``serialize_data``, ``lazy_init``, ...).

    Raises:
        FileNotFoundError: the folder does not exist, or holds no image.
    """

    METAINFO = dict(classes=('patch', ))

    def __init__(self, data_root: str = '', data_prefix: Optional[dict] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, **kwargs) -> None:
        self.extensions = tuple(e.lower() for e in extensions)
        if not self.extensions:
            raise ValueError('PluginImageFolderDataset.extensions is empty')
        kwargs.pop('ann_file', None)
        super().__init__(ann_file='', data_root=data_root,
                         data_prefix=data_prefix or dict(img=''), **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = osp.normpath(self.data_prefix['img'])
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{folder}: no such folder (the images of '
                                    'PluginImageFolderDataset: set data_root and '
                                    'data_prefix.img)')
        paths = []
        for root, _, files in os.walk(folder, followlinks=True):
            paths.extend(osp.join(root, f) for f in files if f.lower().endswith(self.extensions))
        paths.sort()
        if not paths:
            raise FileNotFoundError(f'{folder}: no image files (extensions '
                                    f'{", ".join(self.extensions)}) in this folder or below it')
        return [dict(img_path=path, img_id=i) for i, path in enumerate(paths)]

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output; an error on the way names the image. An
        image the pipeline skips (returns None) is drawn again in training
        (mmengine's refetch) and refused in test mode."""
        try:
            data = super().prepare_data(idx)
        except Exception as err:
            path = self.get_data_info(idx)['img_path']
            raise RuntimeError(f'{path}: could not be prepared ({type(err).__name__}: '
                               f'{err})') from err
        if data is None and self.test_mode:
            raise ValueError(f'{self.get_data_info(idx)["img_path"]}: skipped by the pipeline '
                             '(see the warning above), and a test-mode data set must give '
                             'every image')
        return data
