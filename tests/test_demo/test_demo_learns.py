"""The demo's promise, end to end (slow: about 12 minutes on 2 cores).

Generates the toy set as ``make demo`` does, trains ``configs/detr_r18_toy.py``
through ``tools/train.py``, and checks the COCO mAP reached and that the
attention of each confident query peaks on its own box.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'detr_r18_toy.py')
# the mAP@[.5:.95] the demo config reaches on the toy val split (README, "The demo")
DEMO_MAP = 0.50


@pytest.mark.slow
def test_demo_reaches_its_map_and_attention_lands_on_objects(tmp_path):
    data = str(tmp_path / 'toy')
    work = str(tmp_path / 'work')
    subprocess.run([sys.executable, 'tools/misc/make_toy_dataset.py', '--out-dir', data,
                    '--seed', '0'], cwd=REPO, check=True, capture_output=True)
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
                           '--cfg-options', f'data_root={data}/'], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = []
    for dirpath, _, files in sorted(os.walk(work)):
        if 'scalars.json' in files:
            with open(osp.join(dirpath, 'scalars.json')) as f:
                rows += [json.loads(line) for line in f]
    final = [r['coco/bbox_mAP'] for r in rows if 'coco/bbox_mAP' in r][-1]
    assert final >= DEMO_MAP

    from mmdet.apis import init_detector
    from mmdet_detr_plugin.apis import predict_with_attention
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    model = init_detector(CONFIG, ckpt, device='cpu', cfg_options={'data_root': data + '/'})
    inside = total = 0
    for name in sorted(os.listdir(osp.join(data, 'val')))[:20]:
        result, maps = predict_with_attention(model, osp.join(data, 'val', name))
        pred = result.pred_instances
        for i in torch.nonzero(pred.scores > 0.5).flatten().tolist():
            y, x = divmod(int(maps[i].argmax()), maps.shape[-1])
            x1, y1, x2, y2 = pred.bboxes[i].tolist()
            margin = 0.25 * max(x2 - x1, y2 - y1)  # the map is upsampled from 1/16 cells
            inside += (x1 - margin <= x <= x2 + margin) and (y1 - margin <= y <= y2 + margin)
            total += 1
    assert total > 20
    assert inside / total >= 0.8
