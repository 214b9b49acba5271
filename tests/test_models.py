"""Every registered velocity model: forward + backward at tiny size, bounds, local pretrained loading."""

import pytest
import segmentation_models_pytorch as smp
import timm
import torch

from kagglekit.config import load_config
from kagglekit.errors import UserError
from kagglekit.fwi.models import MODELS
from kagglekit.fwi.models.base import VelocityModel
from kagglekit.fwi.models.fullres import create_backbone
from kagglekit.pretrained import load_pretrained
from tests.conftest import FWI_CONFIGS

TINY = {
    name: load_config(FWI_CONFIGS / f"tiny_{name}.yaml").model
    for name in ("inversionnet", "unet", "hgnet", "convnext", "caformer")
}


def test_every_registered_model_has_a_tiny_and_a_full_config():
    fwi_models = {"inversionnet", "unet", "hgnet", "convnext", "caformer"}
    assert fwi_models <= set(MODELS.names())
    assert set(TINY) == fwi_models
    full = {load_config(p).model.name for p in FWI_CONFIGS.glob("*.yaml") if not p.name.startswith(("tiny_", "small_"))}
    assert full == fwi_models


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_shape_and_bounds(name):
    torch.manual_seed(0)
    model = MODELS.build(TINY[name].name, **TINY[name].kwargs)
    seismic = (torch.randn(2, 5, 1000, 70) * 5).half()  # the dataset's fp16 batches
    out = model(seismic)
    assert out.shape == (2, 70, 70) and out.dtype == torch.float32
    assert out.min() >= 1500 and out.max() <= 4500
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", sorted(TINY))
def test_velocity_model_checks_the_input_shape_and_bounds_saturated_outputs(name):
    torch.manual_seed(0)
    model = MODELS.build(TINY[name].name, **TINY[name].kwargs).eval()
    assert isinstance(model, VelocityModel)
    for shape in [(2, 5, 999, 70), (2, 70, 1000, 5), (5, 1000, 70), (1, 4, 1000, 70)]:
        with pytest.raises(UserError) as err:
            model(torch.zeros(shape))
        message = str(err.value)
        assert "\n" not in message and type(model).__name__ in message
        assert f"expected seismic of shape (B, 5, 1000, 70), found {shape}" in message
    head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # the output conv
    head.weight.data.mul_(1e4)  # logits far beyond tanh's range: the bound must hold, not just the usual case
    for bias, bound in [(1e6, 4500.0), (-1e6, 1500.0)]:
        head.bias.data.fill_(bias)
        with torch.no_grad():
            out = model(torch.randn(2, 5, 1000, 70) * 100)
        assert torch.isfinite(out).all() and out.min() >= 1500 and out.max() <= 4500
        assert (out - bound).abs().max() < 1  # saturated at the bound, never past it


def test_velocity_model_base_bounds_any_body_and_rejects_unknown_transforms():
    class Extreme(VelocityModel):
        def body(self, x):  # (B, 5, 1000, 70) -> (B, 70, 70) logits of +-1e30
            return x[:, 0, :70].sign() * 1e30

    out = Extreme()(torch.randn(2, 5, 1000, 70))
    assert out.shape == (2, 70, 70) and out.min() == 1500 and out.max() == 4500
    assert Extreme().backbone_module() is not None
    with pytest.raises(ValueError, match="gain_log1p"):
        Extreme(input_transform="agc")


def _timm_style_weights(name: str, kwargs: dict) -> dict:
    """What a user would download from timm/torchvision/smp: 3 input channels, original stem."""
    if name == "unet":
        return smp.encoders.get_encoder(
            kwargs["encoder"], in_channels=3, depth=kwargs["encoder_depth"], weights=None
        ).state_dict()
    if name == "hgnet":
        return timm.create_model(kwargs["backbone"], pretrained=False, in_chans=3).state_dict()
    return create_backbone(kwargs["backbone"], kwargs.get("backbone_kwargs", {}), in_chans=3).state_dict()


@pytest.mark.parametrize("name", ["unet", "hgnet", "convnext", "caformer"])
def test_pretrained_backbone_file_loads_with_adapted_stem(name, tmp_path):
    torch.manual_seed(1)
    weights = _timm_style_weights(name, TINY[name].kwargs)
    path = tmp_path / "backbone.pth"
    torch.save(weights, path)
    model = MODELS.build(TINY[name].name, **TINY[name].kwargs)
    stats = load_pretrained(model, path)
    assert stats["loaded"] / stats["total"] > 0.9
    backbone = model.backbone_module().state_dict()
    # a deep tensor is copied exactly; the 3-channel stem became a 5-channel one
    norm = {k.replace("_", "."): k for k in backbone}
    deep = [k for k in weights if weights[k].ndim == 4 and k.replace("_", ".") in norm][-1]
    target = norm[deep.replace("_", ".")]
    assert torch.equal(backbone[target], weights[deep])
    stem = next(k for k in weights if weights[k].ndim == 4)
    stem_target = next(k for k in backbone if k.replace("_", ".") == stem.replace("_", "."))
    assert weights[stem].shape[1] == 3 and backbone[stem_target].shape[1] == 5


def test_pretrained_kagglekit_checkpoint_and_errors(tmp_path):
    source = MODELS.build("inversionnet", width=8)
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "best.pt")
    model = MODELS.build("inversionnet", width=8)
    load_pretrained(model, tmp_path / "best.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(UserError, match="local file"):
        load_pretrained(model, tmp_path / "missing.pt")
    torch.save({"model": MODELS.build("hgnet", **TINY["hgnet"].kwargs).state_dict()}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="tensors match"):
        load_pretrained(model, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read weights"):
        load_pretrained(model, tmp_path / "junk.pt")


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="inversionnet"):
        MODELS.build("vit_giant")


def test_unet_midpoint_binning_puts_each_trace_under_its_midpoint():
    from kagglekit.fwi.constants import SOURCE_COLUMNS
    from kagglekit.fwi.models.unet import midpoint_binning

    weights = midpoint_binning()  # (5, 70, 70)
    receivers = torch.arange(70.0)
    for s, source in enumerate(SOURCE_COLUMNS):
        doubled_midpoint = receivers + source  # trace value = 2 x its midpoint column
        binned = doubled_midpoint @ weights[s]  # (70,)
        filled = weights[s].sum(dim=0) > 0
        columns = torch.arange(70.0)[filled]
        assert torch.all(binned[filled] >= 2 * columns) and torch.all(binned[filled] <= 2 * columns + 1)
        assert torch.all(binned[~filled] == 0)
        # a shot covers the half-aperture between its source and the far end of the spread
        assert filled.sum() in (35, 36) and filled[source // 2]


def test_unet_input_extras_forward_and_bad_time_pool():
    torch.manual_seed(0)
    kwargs = {
        **TINY["unet"].kwargs,
        "time_stem": 4,
        "midpoint_channels": True,
        "coord_channels": True,
        "migration_velocities": [2500.0],
    }
    model = MODELS.build("unet", **kwargs)
    out = model(torch.randn(2, 5, 1000, 70).half())
    assert out.shape == (2, 70, 70) and 1500 <= out.min() and out.max() <= 4500
    out.mean().backward()
    assert model.stem[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even time_pool"):
        MODELS.build("unet", **{**kwargs, "time_pool": 15})


def test_migration_images_a_simulated_reflector_at_its_depth():
    from kagglekit.fwi.models.migration import ConstantVelocityMigration
    from kagglekit.fwi.physics.simulate import simulate

    velocity = torch.full((1, 70, 70), 2000.0)
    velocity[:, 40:] = 3500.0  # flat reflector at row 40 under a 2000 m/s layer
    images = ConstantVelocityMigration((2000.0, 3000.0))(simulate(velocity))  # (1, 10, 70, 70)
    assert images.shape == (1, 10, 70, 70)

    def peak_row(k: int) -> int:
        stack = images[0, 5 * k : 5 * k + 5].sum(0)  # all shots at velocity k
        return 15 + int(stack[15:, 20:50].abs().mean(1).argmax())  # below the direct wave

    assert abs(peak_row(0) - 40) <= 2  # right velocity: right depth
    assert abs(peak_row(1) - 60) <= 3  # 1.5x too fast: imaged 1.5x too deep
    with pytest.raises(ValueError, match="positive"):
        ConstantVelocityMigration((0.0,))


def test_gain_transform_lifts_late_reflections():
    from kagglekit.fwi.models.common import transform_seismic
    from kagglekit.fwi.physics.simulate import simulate

    velocity = torch.full((1, 70, 70), 2000.0)
    velocity[:, 45:] = 4000.0
    gathers = simulate(velocity)  # (1, 5, 1000, 70)

    def late_to_early(kind: str) -> float:
        y = transform_seismic(gathers, kind).abs()
        return float(y[:, :, 500:].amax() / y[:, :, :300].amax())

    assert late_to_early("gain_log1p") > 3 * late_to_early("log1p")  # measured 3.8x
    with pytest.raises(ValueError, match="gain_log1p"):
        transform_seismic(gathers, "agc")
