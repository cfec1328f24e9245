import torch
import torchvision

from mmdet.models.backbones import ResNet
from mmdet_detr_plugin.models.backbones import PluginResNet


def test_dc5_matches_torchvision_dilation_pattern():
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None,
                                            replace_stride_with_dilation=[False, False, True])
    ours = PluginResNet(depth=50, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2),
                        out_indices=(3, ), norm_eval=True)
    ours.eval()  # mmdet's ResNet.train() returns None, so no chaining
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith('fc.')}
    ours.load_state_dict(state, strict=True)
    reference.eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        body = torch.nn.Sequential(*list(reference.children())[:-2])
        expected = body(x)
        got = ours(x)[0]
    assert got.shape == (1, 2048, 6, 4)  # stride 16
    assert torch.allclose(got, expected, atol=1e-4)
    # mmdet's ResNet dilates the first block too, so it differs
    plain = ResNet(depth=50, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), out_indices=(3, ),
                   norm_eval=True)
    plain.eval()
    plain.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert not torch.allclose(plain(x)[0], expected, atol=1e-4)
    assert ours.layer4[0].conv2.dilation == (1, 1) and ours.layer4[1].conv2.dilation == (2, 2)
