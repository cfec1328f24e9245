# DETR R50 on COCO: the paper's model and the reference model zoo's
# 500-epoch schedule (box AP 42.0 reported by the reference release).
_base_ = './detr_r50_8xb2-500e_coco.py'
