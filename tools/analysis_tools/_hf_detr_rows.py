"""The benchmark's rows for Hugging Face transformers' ``DetrForObjectDetection``
(built with the plugin's weights by ``mmdet_detr_plugin.converters.build_hf_detr``).

Called the way transformers runs DETR: the model's forward with ``labels``
returns the weighted loss with auxiliary terms (its matcher is called once
per decoder layer for the whole batch, one scipy call per image); images go
in as ``pixel_values`` with a ``pixel_mask`` of valid pixels.
"""
from typing import Callable, Dict, Optional

import torch

from mmdet_detr_plugin.converters import hf_labels, hf_pixel_mask as pixel_mask


def available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def why_not_run(depth: int, skipped: bool) -> Optional[str]:
    """Why the transformers column is not run, or None when it is."""
    if skipped:
        return 'left out (--skip hf)'
    if not available():
        return 'not run: transformers is not installed (pip install transformers)'
    if depth not in (50, 101, 152):  # its DETR takes bottleneck ResNets only
        return f'not run: its DETR has no ResNet-{depth} (50, 101 or 152)'
    return None


def optimizer(hf) -> torch.optim.Optimizer:
    """DETR's AdamW (backbone lr x 0.1), fused like the plugin's recipe."""
    backbone = [p for n, p in hf.named_parameters() if p.requires_grad and 'backbone' in n]
    rest = [p for n, p in hf.named_parameters() if p.requires_grad and 'backbone' not in n]
    return torch.optim.AdamW([dict(params=rest), dict(params=backbone, lr=1e-5)], lr=1e-4,
                             weight_decay=1e-4, fused=True)


def train_step_fn(hf, inputs, samples, autocast) -> Callable[[], None]:
    mask, labels = pixel_mask(inputs, samples), hf_labels(samples, inputs.device)
    optim = optimizer(hf)
    params = [p for p in hf.parameters() if p.requires_grad]

    def step():
        with autocast():
            loss = hf(pixel_values=inputs, pixel_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.1)
        optim.step()
        optim.zero_grad(set_to_none=True)
    return step


class _Cached(torch.nn.Module):
    """Stands in for the ResNet: returns fixed feature maps."""

    def __init__(self, feature_maps):
        super().__init__()
        self.feature_maps = feature_maps

    def forward(self, pixel_values):
        return self.feature_maps


def owned_part_fn(hf, inputs, samples, autocast) -> Callable[[], None]:
    """Everything after the ResNet (projection, transformer, heads, matching,
    loss), forward and backward, on fixed backbone features."""
    mask, labels = pixel_mask(inputs, samples), hf_labels(samples, inputs.device)
    encoder = hf.model.backbone
    with torch.no_grad(), autocast():
        feats = encoder.model(inputs).feature_maps  # transformers' BackboneOutput
    cached = _Cached([f.detach() for f in feats])

    def step():
        real = encoder.model
        encoder.model = cached
        try:
            with autocast():
                loss = hf(pixel_values=inputs, pixel_mask=mask, labels=labels).loss
            loss.backward()
            hf.zero_grad(set_to_none=True)
        finally:
            encoder.model = real
    return step


def inference_fn(hf, inputs, samples, autocast) -> Callable[[], None]:
    """One image: forward and post-processing to scored boxes in pixels."""
    from transformers import DetrImageProcessor
    processor = DetrImageProcessor()
    one, one_mask = inputs[:1], pixel_mask(inputs[:1], samples[:1])
    size = [tuple(samples[0].metainfo['ori_shape'][:2])]

    def run():
        with torch.no_grad(), autocast():
            out = hf(pixel_values=one, pixel_mask=one_mask)
            processor.post_process_object_detection(out, threshold=0.0, target_sizes=size)
    return run


def agreement(plugin, hf, inputs, samples) -> Dict[str, float]:
    plugin.eval()
    hf.eval()
    with torch.no_grad():
        cls_p, box_p = plugin._forward(inputs, samples)
        loss_p = sum(plugin.loss(inputs, samples).values())
        out = hf(pixel_values=inputs, pixel_mask=pixel_mask(inputs, samples),
                 labels=hf_labels(samples, inputs.device))
    plugin.train()
    hf.train()
    scale = max(cls_p[-1].abs().max().item(), 1.0)
    return dict(logits=(cls_p[-1] - out.logits).abs().max().item() / scale,
                boxes=(box_p[-1] - out.pred_boxes).abs().max().item(),
                loss=abs(loss_p.item() - out.loss.item()) / max(abs(loss_p.item()), 1.0))


def matching_fn(logits, boxes, labels, gt_boxes) -> Callable[[], list]:
    """transformers' matcher as its DETR loss calls it: once per decoder
    layer for the whole batch. Returns per layer, per image (query, gt)."""
    from transformers.loss.loss_for_object_detection import HungarianMatcher
    matcher = HungarianMatcher(class_cost=1, bbox_cost=5, giou_cost=2)
    targets = [dict(class_labels=lab, boxes=g) for lab, g in zip(labels, gt_boxes)]

    def run():
        return [matcher(dict(logits=logits[layer], pred_boxes=boxes[layer]), targets)
                for layer in range(logits.shape[0])]
    return run
