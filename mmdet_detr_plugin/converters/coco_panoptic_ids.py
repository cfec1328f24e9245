"""COCO panoptic's category ids in mmdet's class order.

Source: the ``categories`` of COCO panoptic (``panoptic_coco_categories.json``
in cocodataset/panopticapi, the same list as ``panoptic_{train,val}2017.json``
and as detectron2's ``COCO_CATEGORIES``): 133 categories, the 80 things
(``isthing`` 1, ids 1..90, the ids and names of COCO detection) then the 53
stuff categories (``isthing`` 0, ids 92..200), each part sorted by id. mmdet's
``CocoPanopticDataset.METAINFO['classes']`` lists the same names in the same
order, so label ``i`` of an mmdet panoptic model is category id
``COCO_PANOPTIC_IDS[i]``::

    label   0 person = id 1  ...  label  79 toothbrush = id 90      (things)
    label  80 banner = id 92 ...  label 132 rug-merged  = id 200    (stuff)

The reference DETR release trains on these ids directly: its panoptic
classifier has one row per id 0..249 (unused ids never a target) and the
no-object row 250.
"""
from typing import Tuple

# (category id, name), mmdet's label order
COCO_PANOPTIC_CATEGORIES: Tuple[Tuple[int, str], ...] = (
    # things
    (1, 'person'), (2, 'bicycle'), (3, 'car'), (4, 'motorcycle'), (5, 'airplane'), (6, 'bus'),
    (7, 'train'), (8, 'truck'), (9, 'boat'), (10, 'traffic light'), (11, 'fire hydrant'),
    (13, 'stop sign'), (14, 'parking meter'), (15, 'bench'), (16, 'bird'), (17, 'cat'),
    (18, 'dog'), (19, 'horse'), (20, 'sheep'), (21, 'cow'), (22, 'elephant'), (23, 'bear'),
    (24, 'zebra'), (25, 'giraffe'), (27, 'backpack'), (28, 'umbrella'), (31, 'handbag'),
    (32, 'tie'), (33, 'suitcase'), (34, 'frisbee'), (35, 'skis'), (36, 'snowboard'),
    (37, 'sports ball'), (38, 'kite'), (39, 'baseball bat'), (40, 'baseball glove'),
    (41, 'skateboard'), (42, 'surfboard'), (43, 'tennis racket'), (44, 'bottle'),
    (46, 'wine glass'), (47, 'cup'), (48, 'fork'), (49, 'knife'), (50, 'spoon'), (51, 'bowl'),
    (52, 'banana'), (53, 'apple'), (54, 'sandwich'), (55, 'orange'), (56, 'broccoli'),
    (57, 'carrot'), (58, 'hot dog'), (59, 'pizza'), (60, 'donut'), (61, 'cake'), (62, 'chair'),
    (63, 'couch'), (64, 'potted plant'), (65, 'bed'), (67, 'dining table'), (70, 'toilet'),
    (72, 'tv'), (73, 'laptop'), (74, 'mouse'), (75, 'remote'), (76, 'keyboard'),
    (77, 'cell phone'), (78, 'microwave'), (79, 'oven'), (80, 'toaster'), (81, 'sink'),
    (82, 'refrigerator'), (84, 'book'), (85, 'clock'), (86, 'vase'), (87, 'scissors'),
    (88, 'teddy bear'), (89, 'hair drier'), (90, 'toothbrush'),
    # stuff
    (92, 'banner'), (93, 'blanket'), (95, 'bridge'), (100, 'cardboard'), (107, 'counter'),
    (109, 'curtain'), (112, 'door-stuff'), (118, 'floor-wood'), (119, 'flower'), (122, 'fruit'),
    (125, 'gravel'), (128, 'house'), (130, 'light'), (133, 'mirror-stuff'), (138, 'net'),
    (141, 'pillow'), (144, 'platform'), (145, 'playingfield'), (147, 'railroad'), (148, 'river'),
    (149, 'road'), (151, 'roof'), (154, 'sand'), (155, 'sea'), (156, 'shelf'), (159, 'snow'),
    (161, 'stairs'), (166, 'tent'), (168, 'towel'), (171, 'wall-brick'), (175, 'wall-stone'),
    (176, 'wall-tile'), (177, 'wall-wood'), (178, 'water-other'), (180, 'window-blind'),
    (181, 'window-other'), (184, 'tree-merged'), (185, 'fence-merged'), (186, 'ceiling-merged'),
    (187, 'sky-other-merged'), (188, 'cabinet-merged'), (189, 'table-merged'),
    (190, 'floor-other-merged'), (191, 'pavement-merged'), (192, 'mountain-merged'),
    (193, 'grass-merged'), (194, 'dirt-merged'), (195, 'paper-merged'),
    (196, 'food-other-merged'), (197, 'building-other-merged'), (198, 'rock-merged'),
    (199, 'wall-other-merged'), (200, 'rug-merged'))
# things come first; the release tells them apart by id (id <= 90 is a thing)
NUM_THING_CLASSES = 80
COCO_PANOPTIC_IDS: Tuple[int, ...] = tuple(i for i, _ in COCO_PANOPTIC_CATEGORIES)
COCO_PANOPTIC_NAMES: Tuple[str, ...] = tuple(n for _, n in COCO_PANOPTIC_CATEGORIES)
# COCO detection's 80 categories: the things, same ids, names and order
COCO_THING_IDS: Tuple[int, ...] = COCO_PANOPTIC_IDS[:NUM_THING_CLASSES]
