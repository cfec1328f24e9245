"""Refuse checkpoints that do not fit the model, with one clear message.

mmengine loads ``load_from`` checkpoints non-strictly: a checkpoint of
another layout (mmdet's DETR, the original release) or another class count
only produces warnings and the run trains from random weights. The
detector's ``_load_from_state_dict`` (the one load path of ``load_from``,
``--resume``, ``init_detector`` and ``load_state_dict``) calls
:func:`check_incoming_state_dict`, which sees the whole incoming state dict
before any tensor is copied and

* raises :class:`CheckpointMismatchError` listing the missing and
  unexpected keys when any of the model's tensors is missing (another
  layout, or a partial file), naming the converters to use;
* raises it listing the tensors whose shapes differ, except
* the classifier (``bbox_head.fc_cls``) when ``reset_classifier`` is set:
  its incoming rows (which may also be absent) are replaced by the model's
  own, so that it keeps its fresh initialisation (fine-tuning on a data set
  with another class count) and nothing is reported missing.

A box checkpoint (no ``bbox_head.attention_map.*`` nor
``bbox_head.mask_head.*``) loaded into ``PluginDETRPanoptic`` is the start of
the panoptic recipe's mask stage: the mask parts keep their fresh values,
and a log line says so. A checkpoint with only some of them is refused.

Denoising training (``PluginDenoisingQueries``) keeps the matching scheme
under ``queries.matching.`` and adds ``queries.label_embedding``,
``queries.indicator`` (and ``queries.box_*`` for DETR's queries). A
checkpoint trained without it loads into a model with it (the denoising
parts start afresh) and one trained with it into a model without it (they
are dropped: test time does not use them), each with a log line.

The encoder head (``encoder_head.*``, ``PluginDETR(encoder_head=...)``) is
a training aid: a checkpoint with it loads into a model without it
(dropped) and one without it into a model with it (it starts afresh, to be
trained: two-stage queries read its proposals, so such a model needs
training before it predicts), each with a log line.

A UP-DETR pre-training checkpoint (``PluginUPDETR``: it holds the heads
``queries.patch2query`` and ``bbox_head.feature_align``) loaded into a model
without these heads is a fine-tuning start: the heads and the classifier
(which scores "patch", not a class) are dropped, and a log line lists them.
"""
from typing import Dict, List

from mmengine.logging import print_log
from torch import Tensor, nn

CLASSIFIER_PREFIX = 'bbox_head.fc_cls.'
PRETRAINING_PREFIXES = ('queries.patch2query.', 'bbox_head.feature_align.')
MASK_PREFIXES = ('bbox_head.attention_map.', 'bbox_head.mask_head.')
CONVERTERS = ('tools/model_converters/mmdet_detr_convert.py (mmdet\'s DETR), '
              'tools/model_converters/detr_original_to_plugin.py (the original DETR release) '
              'or tools/model_converters/hf_detr_convert.py (transformers\' DETR)')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that does not fit the model it is loaded into."""


def _listing(title: str, keys: List[str], limit: int = 12) -> str:
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return f'\n  {title} ({len(keys)}): {", ".join(keys[:limit])}{more}'


def check_incoming_state_dict(model: nn.Module, state_dict: Dict[str, Tensor], prefix: str,
                              reset_classifier: bool) -> None:
    """Validate (and, for a new class count, trim) ``state_dict`` in place."""
    own = {prefix + k: v for k, v in model.state_dict().items()}
    _adapt_denoising(own, state_dict, prefix)
    _adapt_encoder_head(own, state_dict, prefix)
    pretrained = _drop_pretraining_heads(own, state_dict, prefix)
    incoming = [k for k in state_dict if k.startswith(prefix)]
    # num_batches_tracked buffers are bookkeeping: never a reason to refuse
    own_keys = [k for k in own if not k.endswith('num_batches_tracked')]
    _keep_fresh_mask_head(own, state_dict, prefix)
    if reset_classifier or pretrained:
        absent = [k for k in own_keys if k.startswith(prefix + CLASSIFIER_PREFIX)
                  and k not in state_dict]
        for k in absent:  # the model's fresh values, so that none is reported missing
            state_dict[k] = own[k].clone()
        if absent and not pretrained:
            print_log('the checkpoint has no classifier: bbox_head.fc_cls starts afresh '
                      '(reset_classifier=True)', logger='current')
    found = [k for k in own_keys if k in state_dict]
    if len(found) < len(own_keys):
        missing = [k for k in own_keys if k not in state_dict]
        unexpected = [k for k in incoming if k not in own]
        raise CheckpointMismatchError(
            f'the checkpoint does not fit {type(model).__name__}: {len(found)} of '
            f'{len(own_keys)} tensors found (another layout, or a partial file?).'
            + _listing('missing', missing) + _listing('unexpected', unexpected)
            + f'\n  convert it first with {CONVERTERS}')
    mismatched = [k for k in found if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    classifier = [k for k in mismatched if k.startswith(prefix + CLASSIFIER_PREFIX)]
    others = [k for k in mismatched if k not in classifier]
    if classifier and reset_classifier and not others:
        old, new = state_dict[classifier[0]].shape[0], own[classifier[0]].shape[0]
        for k in classifier:  # the model's fresh values: loading them changes nothing
            state_dict[k] = own[k].clone()
        print_log(f'the checkpoint\'s classifier has {old} outputs, the model {new} '
                  f'(num_classes + 1): bbox_head.fc_cls starts afresh (reset_classifier=True)',
                  logger='current')
        return
    if mismatched:
        details = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
                   f'{tuple(own[k].shape)}' for k in mismatched]
        hint = ''
        if classifier:
            hint = ('\n  the classifier differs: the checkpoint was trained for another number '
                    'of classes than model.bbox_head.num_classes. To fine-tune on the new '
                    'classes, add model.reset_classifier=True')
        raise CheckpointMismatchError('tensors of the checkpoint have other shapes than the '
                                      'model\'s:' + _listing('shapes', details) + hint)


def _drop_pretraining_heads(own: Dict[str, Tensor], state_dict: Dict[str, Tensor],
                            prefix: str) -> bool:
    """A UP-DETR pre-training checkpoint into a detector: drop its heads and
    its classifier from ``state_dict``, say so, and return True."""
    heads = [k for k in state_dict
             if k.startswith(tuple(prefix + p for p in PRETRAINING_PREFIXES)) and k not in own]
    if not heads:
        return False
    classifier = [k for k in state_dict if k.startswith(prefix + CLASSIFIER_PREFIX)]
    for key in heads + classifier:  # the caller fills in the model's fresh classifier
        del state_dict[key]
    names = sorted({k[len(prefix):].rsplit('.', 1)[0] for k in heads + classifier})
    print_log(f'UP-DETR pre-training checkpoint: dropped its pre-training heads and its '
              f'"patch" classifier ({len(heads) + len(classifier)} tensors: '
              f'{", ".join(names)}); the classifier starts afresh', logger='current')
    return True


def _keep_fresh_mask_head(own: Dict[str, Tensor], state_dict: Dict[str, Tensor],
                          prefix: str) -> None:
    """A box checkpoint into a panoptic model: the model's fresh attention
    maps and mask head are put into ``state_dict``, with a log line."""
    mask_keys = [k for k in own if k.startswith(tuple(prefix + p for p in MASK_PREFIXES))]
    if not mask_keys or any(k in state_dict for k in mask_keys):
        return
    if not any(k.startswith(prefix + CLASSIFIER_PREFIX) for k in state_dict):
        return  # not a detector checkpoint: reported as missing keys
    for key in mask_keys:
        state_dict[key] = own[key].clone()
    print_log(f'box detector checkpoint: the attention maps and the mask head '
              f'({len(mask_keys)} tensors) start afresh', logger='current')


ENCODER_HEAD_PREFIX = 'encoder_head.'


def _adapt_encoder_head(own: Dict[str, Tensor], state_dict: Dict[str, Tensor],
                        prefix: str) -> None:
    """Drop the checkpoint's training-only encoder head when the model has
    none; start the model's afresh when the checkpoint has none."""
    head = prefix + ENCODER_HEAD_PREFIX
    in_model = [k for k in own if k.startswith(head)]
    in_ckpt = [k for k in state_dict if k.startswith(head)]
    if in_ckpt and not in_model:
        for key in in_ckpt:
            del state_dict[key]
        print_log(f'checkpoint trained with an encoder head: its {len(in_ckpt)} tensors '
                  'dropped (training only)', logger='current')
    elif in_model and not in_ckpt and any(k.startswith(prefix + 'bbox_head.')
                                          for k in state_dict):
        for key in in_model:
            state_dict[key] = own[key].clone()
        print_log(f'checkpoint trained without an encoder head: model.encoder_head '
                  f'({len(in_model)} tensors) starts afresh (train it before predicting with '
                  'two-stage queries)', logger='current')


DENOISING_PREFIXES = ('queries.label_embedding.', 'queries.indicator.', 'queries.box_')


def _adapt_denoising(own: Dict[str, Tensor], state_dict: Dict[str, Tensor],
                     prefix: str) -> None:
    """Move the matching scheme's tensors between ``queries.`` and
    ``queries.matching.`` when the checkpoint and the model differ in
    denoising training; fill in or drop the denoising parts (module
    docstring)."""
    inner, outer = prefix + 'queries.matching.', prefix + 'queries.'
    denoising = tuple(prefix + p for p in DENOISING_PREFIXES)
    model_dn = any(k.startswith(inner) for k in own)
    ckpt_dn = any(k.startswith(inner) for k in state_dict)
    if model_dn == ckpt_dn or not any(k.startswith(outer) for k in state_dict):
        return
    if model_dn:  # plain checkpoint -> model with denoising
        for key in [k for k in state_dict if k.startswith(outer)]:
            state_dict[inner + key[len(outer):]] = state_dict.pop(key)
        fresh = [k for k in own if k.startswith(denoising)]
        for key in fresh:
            state_dict[key] = own[key].clone()
        indicator = prefix + 'queries.indicator.weight'
        if indicator in state_dict:  # row 0 is added to the matching queries: zero keeps the
            state_dict[indicator][0] = 0  # checkpoint's test-time predictions as they were
        print_log(f'checkpoint trained without denoising: its queries moved to '
                  f'queries.matching; the denoising parts ({len(fresh)} tensors) start afresh '
                  '(the matching indicator at zero: predictions unchanged)', logger='current')
        return
    dropped = [k for k in state_dict if k.startswith(denoising)]  # -> model without it
    for key in dropped:
        del state_dict[key]
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[outer + key[len(inner):]] = state_dict.pop(key)
    print_log(f'checkpoint trained with denoising: its denoising parts ({len(dropped)} '
              f'tensors) dropped, its matching queries loaded', logger='current')
