"""Compare two prediction dumps of ``tools/test.py --out`` (e.g. the PyTorch
checkpoint and its ONNX export run with ``--backend onnxruntime``).

    python tools/deployment/compare_predictions.py PYTORCH.pkl ONNXRUNTIME.pkl
        [--json OUT.json]

Prints, over all images (matched by ``img_id``), the largest difference of
the scores, of the boxes (pixels of the original image) and the number of
differing labels, for the predictions in the same order.
"""
import argparse
import json
import pickle

import numpy as np


def load(path: str) -> dict:
    with open(path, 'rb') as f:
        results = pickle.load(f)
    return {r['img_id']: r['pred_instances'] for r in results}


def compare(a: dict, b: dict) -> dict:
    if set(a) != set(b):
        raise ValueError(f'the dumps cover different images ({len(a)} and {len(b)}; '
                         f'{len(set(a) ^ set(b))} in only one)')
    scores = boxes = 0.
    labels = count = 0
    for img_id, want in a.items():
        got = b[img_id]
        w_scores, g_scores = np.asarray(want['scores']), np.asarray(got['scores'])
        if w_scores.shape != g_scores.shape:
            raise ValueError(f'image {img_id}: {len(w_scores)} vs {len(g_scores)} predictions')
        count += len(w_scores)
        if not len(w_scores):
            continue
        scores = max(scores, float(np.abs(g_scores - w_scores).max()))
        boxes = max(boxes, float(np.abs(np.asarray(got['bboxes'])
                                        - np.asarray(want['bboxes'])).max()))
        labels += int((np.asarray(got['labels']) != np.asarray(want['labels'])).sum())
    return dict(images=len(a), predictions=count, max_score_diff=scores,
                max_box_diff_px=boxes, differing_labels=labels)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Compare two tools/test.py --out dumps')
    parser.add_argument('reference', help='.pkl of tools/test.py --out (e.g. PyTorch)')
    parser.add_argument('other', help='.pkl to compare (e.g. --backend onnxruntime)')
    parser.add_argument('--json', default=None, help='write the figures to this file')
    args = parser.parse_args(argv)
    result = compare(load(args.reference), load(args.other))
    print(f'{result["images"]} images, {result["predictions"]} predictions each: max |score '
          f'diff| {result["max_score_diff"]:.2e}, max |box diff| '
          f'{result["max_box_diff_px"]:.2e} px, {result["differing_labels"]} differing labels')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
