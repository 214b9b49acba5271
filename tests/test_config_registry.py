import pytest

from kagglekit.config import ConfigError, config_from_dict, load_config, parse_overrides, save_config
from kagglekit.registry import Registry


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_defaults_name_from_file_and_overrides(tmp_path):
    path = write(tmp_path, "task: fwi\nmodel:\n  name: unet\ntrain:\n  lr: 0.001\n")
    cfg = load_config(path, ["train.lr=3e-4", "train.epochs=2", "model.kwargs.width=8"])
    assert cfg.name == "exp"
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.epochs == 2
    assert cfg.model.kwargs == {"width": 8}


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "task: fwi\nmodel:\n  name: unet\ntrain:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "train.lrr" in str(err.value)


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path, "task: fwi\nmodel:\n  name: unet\n")
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(path, ["train.epochs=many"])


def test_override_into_a_value_is_rejected():
    with pytest.raises(ConfigError, match="not a section"):
        config_from_dict({"name": "x", "task": "fwi", "model": {"name": "m"}, "out_dir": "runs"}, overrides=["out_dir.x=1"])


def test_parse_overrides_types():
    assert parse_overrides(["a=1", "b=1e-3", "c=true", "d=text", "e=[1, 2]"]) == [
        ("a", 1),
        ("b", 1e-3),
        ("c", True),
        ("d", "text"),
        ("e", [1, 2]),
    ]
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, "task: fwi\nmodel:\n  name: unet\n"), ["train.lr=0.01"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(tmp_path / "out" / "config.yaml")
    assert again == cfg


def test_defaults_are_not_shared():
    a = config_from_dict({"name": "a", "task": "fwi", "model": {"name": "m"}})
    b = config_from_dict({"name": "b", "task": "fwi", "model": {"name": "m"}})
    a.model.kwargs["x"] = 1
    assert b.model.kwargs == {}


def test_config_from_dict_leaves_its_input_alone():
    raw = {"name": "a", "task": "fwi", "model": {"name": "m", "kwargs": {"width": 8}}, "train": {"lr": 0.1}}
    before = repr(raw)
    cfg = config_from_dict(raw, overrides=["train.lr=0.5", "model.kwargs.width=16", "data.flip_prob=0"])
    assert repr(raw) == before
    assert cfg.train.lr == 0.5 and cfg.model.kwargs == {"width": 16} and cfg.data.flip_prob == 0


def test_task_decides_the_data_schema_and_defaults():
    fwi = config_from_dict({"name": "a", "task": "fwi", "model": {"name": "m"}})
    vision = config_from_dict({"name": "b", "task": "vision", "model": {"name": "m"}})
    assert type(fwi.data).__name__ == "FWIDataConfig" and type(vision.data).__name__ == "VisionDataConfig"
    assert (fwi.train.loss, vision.train.loss) == ("l1", "cross_entropy")  # each task's default
    with pytest.raises(ConfigError, match=r"data\.dataset"):
        config_from_dict({"name": "a", "task": "fwi", "model": {"name": "m"}, "data": {"dataset": "digits"}})
    with pytest.raises(ConfigError, match="unknown task 'chess'; registered: .*fwi.*vision"):
        config_from_dict({"name": "a", "task": "chess", "model": {"name": "m"}})
    with pytest.raises(ConfigError, match="task: required"):
        config_from_dict({"name": "a", "model": {"name": "m"}})


def test_model_registries_fill_themselves_and_do_not_share_names():
    import subprocess
    import sys

    # a fresh interpreter that imports nothing but the registries still finds every model
    code = (
        "from kagglekit.fwi.models import MODELS as F; from kagglekit.vision.models import MODELS as V; "
        "print(','.join(F.names())); print(','.join(V.names()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "caformer,convnext,hgnet,inversionnet,unet"
    assert out[1] == "alexnet,nin,resnet9,vgg"


def test_registry_unknown_duplicate_and_bad_kwargs():
    reg = Registry("widget")

    @reg.register("small")
    def small(size: int = 1):
        return size

    assert reg.build("small", size=3) == 3
    with pytest.raises(KeyError, match="valid names: small"):
        reg.build("big")
    reg.register("small")(small)  # the same object again (a re-import) is fine
    with pytest.raises(KeyError, match="already registered"):
        reg.register("small")(lambda: 2)
    with pytest.raises(TypeError, match="colour"):
        reg.build("small", colour="red")


def test_fwi_physics_section_is_strict_and_round_trips(tmp_path):
    path = write(tmp_path, "task: fwi\nmodel: {name: unet}\nphysics:\n  weight: 10\n  samples: 1\n")
    cfg = load_config(path)
    assert (cfg.physics.weight, cfg.physics.samples, cfg.physics.warmup, cfg.physics.cycle_weight) == (10, 1, 0.1, 0)
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
    with pytest.raises(ConfigError) as err:
        load_config(path, ["physics.wieght=1"])
    assert str(path) in str(err.value) and "physics.wieght: Extra inputs are not permitted" in str(err.value)
    with pytest.raises(ConfigError, match=r"physics\.samples"):
        load_config(path, ["physics.samples=0"])
    with pytest.raises(ConfigError, match=r"physics: Extra inputs"):  # the section is fwi's, not vision's
        config_from_dict({"name": "v", "task": "vision", "model": {"name": "m"}, "physics": {"weight": 1}})


@pytest.mark.parametrize(
    "old, new",
    [
        ("physics_weight", "weight"),
        ("physics_warmup", "warmup"),
        ("physics_samples", "samples"),
        ("cycle_weight", "cycle_weight"),
        ("unlabeled_every", "unlabeled_every"),
    ],
)
def test_old_train_physics_keys_point_to_the_physics_section(tmp_path, old, new):
    path = write(tmp_path, f"task: fwi\nmodel: {{name: unet}}\ntrain:\n  {old}: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message == f"{path}: train.{old} is now physics.{new} (moved to the 'fwi' task's physics: section); rename"
    with pytest.raises(ConfigError, match=rf"train\.{old} is now physics\.{new}"):  # as an override too
        load_config(write(tmp_path, "task: fwi\nmodel: {name: unet}\n", "ok.yaml"), [f"train.{old}=1"])


def test_physics_rules_across_sections(tmp_path):
    path = write(tmp_path, "task: fwi\nmodel: {name: unet}\ndata: {unlabeled: data/test}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: data\.unlabeled: .*set physics\.weight > 0 or drop data\.unlabeled$"):
        load_config(path)
    assert load_config(path, ["physics.weight=1"]).data.unlabeled == "data/test"
    with pytest.raises(ConfigError, match=r"physics\.cycle_weight: the cycle term runs on unlabeled batches only"):
        config_from_dict({"name": "a", "task": "fwi", "model": {"name": "m"}, "physics": {"weight": 1, "cycle_weight": 0.1}})
