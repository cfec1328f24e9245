"""mmengine's checkpoints load with torch's weights-only loader, and nothing
else is let through."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmdet_detr_plugin.utils import allow_mmengine_checkpoints


class NotAllowed:
    """A class that must stay refused by weights-only loading."""

    def __reduce__(self):
        return (print, ('this must never run', ))


def test_message_hub_state_round_trips(tmp_path):
    allow_mmengine_checkpoints()
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', 3)
    ckpt = dict(meta=dict(iter=3, seed=np.int64(7)), state_dict=dict(w=torch.ones(2)),
                message_hub=hub.state_dict())
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path)  # weights_only is the default
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(1.0)
    assert loaded['meta']['seed'] == 7


def test_arbitrary_globals_stay_refused(tmp_path):
    allow_mmengine_checkpoints()
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'x': NotAllowed()}, f)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_idempotent():
    allow_mmengine_checkpoints()
    count = len(torch.serialization.get_safe_globals())
    allow_mmengine_checkpoints()
    assert len(torch.serialization.get_safe_globals()) == count


def test_getattr_stand_in_resolves_only_statistics_methods():
    from mmdet_detr_plugin.utils.checkpoint_compat import history_buffer_method
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in ((HistoryBuffer, '__init__'), (torch, 'load'), (pickle, 'loads')):
        with pytest.raises(pickle.UnpicklingError, match='refuses getattr'):
            history_buffer_method(owner, name)
