"""The `kaggle` wrappers against a stand-in `kaggle` module (offline), the commands that use them,
and import hygiene: nothing kagglekit or inference imports pulls in kaggle, deepwave or matplotlib."""

import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from requests.exceptions import ConnectionError, HTTPError

from kagglekit.cli import main
from kagglekit.kaggle import KaggleError, api

KERNEL = Path(__file__).resolve().parents[1] / "kernels" / "kagglekit-fwi-submission"


class FakeApi:
    """Records calls; replies like kaggle 2.2's KaggleApi (attributes of its kagglesdk responses)."""

    CONFIG_NAME_USER = "username"

    def __init__(self):
        self.calls = []
        self.kernel_states = ["QUEUED", "RUNNING", "COMPLETE"]
        self.datasets = {}  # id -> list of statuses still to report
        self.models, self.instances = set(), {}
        self.dropped = []
        self.push_error = None
        self.submissions = []  # what competition_submissions lists (newest first), one list per call

    def get_config_value(self, name):
        return "someone"

    def kernels_push(self, folder, timeout=None, acc=None):
        self.calls.append(("push", folder, timeout))
        if self.push_error:
            raise self.push_error
        return SimpleNamespace(
            error="",
            version_number=7,
            url="https://www.kaggle.com/code/kagglekit/kagglekit-fwi-submission",
            invalid_dataset_sources=self.dropped,
            invalid_competition_sources=[],
            invalid_kernel_sources=[],
            invalid_model_sources=[],
        )

    def kernels_status(self, kernel):
        state = self.kernel_states.pop(0)
        return SimpleNamespace(
            status=SimpleNamespace(name=state), failure_message="CUDA out of memory" if state == "ERROR" else ""
        )

    def competition_submit_code(self, file_name, message, competition=None, kernel=None, kernel_version=None, quiet=False):
        self.calls.append(("submit_code", file_name, message, competition, kernel, kernel_version))
        return SimpleNamespace(error="", message="Submission successful", ref=41)

    def competition_submit(self, file_name, message, competition, quiet=False, sandbox=False):
        self.calls.append(("submit", file_name, message, competition))
        return SimpleNamespace(error="", message="Successfully submitted", ref=42)

    def competition_submissions(self, competition):
        self.calls.append(("submissions", competition))
        return self.submissions.pop(0) if len(self.submissions) > 1 else self.submissions[0]

    def dataset_status(self, dataset):
        if dataset not in self.datasets:
            raise HTTPError("404 Not Found")
        states = self.datasets[dataset]
        return states.pop(0) if len(states) > 1 else states[0]

    def dataset_create_new(self, folder, public=False, quiet=False, convert_to_csv=True, dir_mode="skip"):
        self.calls.append(("create", folder, public, dir_mode))
        self.datasets["kagglekit/kagglekit-code"] = ["pending", "ready"]
        return SimpleNamespace(error=None, status="ok")

    def dataset_create_version(self, folder, version_notes, quiet=False, dir_mode="skip"):
        self.calls.append(("version", folder, version_notes, dir_mode))
        return SimpleNamespace(error=None, status="ok")

    def model_get(self, model):
        if model not in self.models:
            raise HTTPError("404")
        return SimpleNamespace(ref=model)

    def model_create_new(self, folder):
        self.calls.append(("model_create", folder))
        self.models.add("kagglekit/kagglekit-fwi")
        return SimpleNamespace(error="")

    def model_instance_get(self, handle):
        if handle not in self.instances:
            raise HTTPError("404")
        return SimpleNamespace(version_number=self.instances[handle])

    def model_instance_create(self, folder, quiet=False):
        self.calls.append(("instance_create", folder))
        self.instances["kagglekit/kagglekit-fwi/pyTorch/default"] = 1
        return SimpleNamespace(error="")

    def model_instance_version_create(self, handle, folder, version_notes="", quiet=False):
        self.calls.append(("instance_version", handle, folder, version_notes))
        self.instances[handle] += 1
        return SimpleNamespace(error="")


@pytest.fixture
def fake(monkeypatch):
    module = types.ModuleType("kaggle")
    module.api = FakeApi()
    monkeypatch.setitem(sys.modules, "kaggle", module)
    return module.api


def test_push_returns_the_version_and_rejects_dropped_sources(fake):
    assert api.push(KERNEL) == (
        "kagglekit/kagglekit-fwi-submission",
        7,
        "https://www.kaggle.com/code/kagglekit/kagglekit-fwi-submission",
    )
    fake.dropped = ["kagglekit/kagglekit-code"]
    with pytest.raises(KaggleError, match=r"version 7 was pushed without the sources .*kagglekit/kagglekit-code"):
        api.push(KERNEL)
    fake.push_error = ConnectionError("HTTPSConnectionPool(host='api.kaggle.com', port=443):\n Max retries exceeded")
    with pytest.raises(KaggleError) as err:
        api.push(KERNEL)
    assert "\n" not in str(err.value) and "ConnectionError" in str(err.value) and "api.kaggle.com" in str(err.value)


def test_wait_polls_until_the_run_ends(fake):
    sleeps = []
    assert api.wait_kernel("kagglekit/x-kernel", poll_s=5, sleep=sleeps.append) == "COMPLETE"
    assert sleeps == [5, 5]
    fake.kernel_states = ["RUNNING", "ERROR"]
    with pytest.raises(KaggleError, match="ended ERROR: CUDA out of memory"):
        api.wait_kernel("kagglekit/x-kernel", sleep=sleeps.append)


def submission(ref, status, score="", description="m", error=""):
    """A listed submission as kagglesdk's ApiSubmission has it (status an enum, score a string)."""
    return SimpleNamespace(
        ref=ref, status=SimpleNamespace(name=status), public_score=score, description=description, error_description=error
    )


def test_submit_code_and_csv_competitions(fake, tmp_path):
    reply = api.submit("waveform-inversion", "blend", kernel="kagglekit/kagglekit-fwi-submission", kernel_version=7)
    assert reply == ("Submission successful", 41)
    assert fake.calls[-1] == (
        "submit_code",
        "submission.csv",
        "blend",
        "waveform-inversion",
        "kagglekit/kagglekit-fwi-submission",
        7,
    )
    csv = tmp_path / "sub.csv"
    csv.write_text("id,label\n")
    assert api.submit("digit-recognizer", "first", csv=csv) == ("Successfully submitted", 42)
    assert fake.calls[-1] == ("submit", str(csv), "first", "digit-recognizer")
    with pytest.raises(KaggleError, match="--kernel and --kernel-version"):
        api.submit("waveform-inversion", "m", kernel="kagglekit/kagglekit-fwi-submission")
    with pytest.raises(KaggleError, match="needs an existing CSV"):
        api.submit("digit-recognizer", "m", csv=tmp_path / "missing.csv")


def test_wait_score_polls_the_submission_until_scored(fake):
    sleeps = []
    fake.submissions = [
        [submission(40, "COMPLETE", "99.0")],  # an older one, not ours
        [submission(42, "PENDING"), submission(40, "COMPLETE", "99.0")],
        [submission(42, "COMPLETE", "31.25"), submission(40, "COMPLETE", "99.0")],
    ]
    assert api.wait_score("waveform-inversion", "m", 42, poll_s=3, sleep=sleeps.append) == 31.25 and sleeps == [3, 3]
    fake.submissions = [[submission(43, "ERROR", error="Submission has 3 rows, expected 4620")]]
    with pytest.raises(KaggleError, match="submission 43 to waveform-inversion failed: Submission has 3 rows"):
        api.wait_score("waveform-inversion", "m", 43, sleep=sleeps.append)
    fake.submissions = [[submission(44, "PENDING")]]
    with pytest.raises(KaggleError, match="still PENDING after 0 min"):
        api.wait_score("waveform-inversion", "m", 44, timeout_s=0.0, sleep=sleeps.append)
    fake.submissions = [[submission(0, "COMPLETE", "12.5", description="by message")]]  # no ref from the upload
    assert api.wait_score("waveform-inversion", "by message", None, sleep=sleeps.append) == 12.5


def test_submit_command_uploads_the_csv_and_records_the_score_in_its_runs(fake, tmp_path, capsys):
    """`kaggle submit CSV -m MSG`: the CSV route of waveform-inversion; the score goes to the runs
    named in CSV.sources.json, and a CSV without one says its score was recorded nowhere."""
    from tests.conftest import make_run

    run = make_run(tmp_path / "runs", "fwi/tiny_inversionnet")
    csv = tmp_path / "submission.csv"
    csv.write_text("oid_ypos,x_1\n")
    Path(f"{csv}.sources.json").write_text(json.dumps({"csv": str(csv), "predictions": None, "runs": [str(run)]}))
    fake.submissions = [[submission(42, "COMPLETE", "55.5", description="first")]]
    assert main(["kaggle", "submit", str(csv), "-m", "first", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert fake.calls[0] == ("submit", str(csv), "first", "waveform-inversion")  # kaggle competitions submit -c ... -f ... -m
    assert "public score: 55.5" in out and f"recorded in 1 runs: {run / 'leaderboard.jsonl'}" in out
    (record,) = [json.loads(line) for line in (run / "leaderboard.jsonl").read_text().splitlines()]
    assert [record[k] for k in ("competition", "score", "csv", "message")] == ["waveform-inversion", 55.5, str(csv), "first"]

    Path(f"{csv}.sources.json").unlink()
    assert main(["kaggle", "submit", str(csv), "-m", "again", "--poll", "0"]) == 0
    assert f"score not recorded in any run: no {csv}.sources.json" in capsys.readouterr().out
    assert len((run / "leaderboard.jsonl").read_text().splitlines()) == 1
    assert main(["kaggle", "submit", str(csv), "-m", "later", "--no-wait"]) == 0
    assert "not waiting for the score" in capsys.readouterr().out and fake.calls[-1][0] == "submit"


def _dataset_folder(tmp_path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "dataset-metadata.json").write_text('{"id": "kagglekit/kagglekit-code", "title": "kagglekit code"}')
    return folder


def test_publish_dataset_creates_then_versions_and_waits_until_ready(fake, tmp_path):
    folder, sleeps = _dataset_folder(tmp_path), []
    assert api.publish_dataset(folder, sleep=sleeps.append, poll_s=1) == "kagglekit/kagglekit-code"
    assert fake.calls == [("create", str(folder), False, "skip")] and sleeps == [1]
    api.publish_dataset(folder, notes="new runs", sleep=sleeps.append)
    assert fake.calls[-1] == ("version", str(folder), "new runs", "skip")
    fake.datasets["kagglekit/kagglekit-code"] = ["failed"]
    with pytest.raises(KaggleError, match="processing failed"):
        api.publish_dataset(folder, sleep=sleeps.append)


def test_publish_model_creates_model_and_instance_then_versions(fake, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model-metadata.json").write_text('{"ownerSlug": "kagglekit", "slug": "kagglekit-fwi"}')
    (folder / "model-instance-metadata.json").write_text(
        '{"ownerSlug": "kagglekit", "modelSlug": "kagglekit-fwi", "framework": "pyTorch", "instanceSlug": "default"}'
    )
    assert api.publish_model(folder, sleep=lambda s: None) == "kagglekit/kagglekit-fwi/pyTorch/default/1"
    assert [c[0] for c in fake.calls] == ["model_create", "instance_create"]
    assert api.publish_model(folder, notes="v2", sleep=lambda s: None) == "kagglekit/kagglekit-fwi/pyTorch/default/2"
    assert fake.calls[-1][0] == "instance_version" and len(fake.calls) == 3


def test_commands_validate_then_call_the_api(fake, tmp_path, capsys):
    assert main(["kaggle", "push", str(KERNEL)]) == 0
    assert "pushed kagglekit/kagglekit-fwi-submission version 7" in capsys.readouterr().out
    fake.submissions = [[submission(41, "COMPLETE", "70.0")]]
    args = ["kaggle", "submit", "-c", "waveform-inversion", "--message", "m", "--kernel", "kagglekit/kagglekit-fwi-submission"]
    assert main([*args, "--kernel-version", "7", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert "Submission successful" in out and "public score: 70" in out and "a kernel submission has no local CSV" in out
    with pytest.raises(SystemExit):  # the old spelling is gone
        main([*args, "--version", "7"])
    assert main(["kaggle", "status", "kagglekit/x-kernel"]) == 0 and "QUEUED" in capsys.readouterr().out
    assert main(["kaggle", "whoami"]) == 0 and capsys.readouterr().out.strip() == "someone"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "kernel-metadata.json").write_text(
        (KERNEL / "kernel-metadata.json").read_text().replace('"machine_shape": "NvidiaTeslaT4",', "")
    )
    (bad / "submission.py").write_text("")
    assert main(["kaggle", "push", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "enable_gpu without machine_shape gives a P100" in err and len(err.strip().splitlines()) == 1
    assert [c[0] for c in fake.calls] == ["push", "submit_code", "submissions"]  # the bad folder never reached the API


IMPORT_CHECK = """
import sys
import kagglekit, kagglekit.cli
kagglekit.cli.build_parser()
import kagglekit.kaggle.runtime, kagglekit.kaggle.stage, kagglekit.kaggle.kernels, kagglekit.kaggle.validate
import kagglekit.fwi.kernels, kagglekit.vision.kernels
from kagglekit.config import load_config
from kagglekit.engine.task import build_task
from kagglekit.fwi.ensemble import blend_config_predictions
from kagglekit.fwi.predict import predict_runs
from kagglekit.fwi.submission import write_csv
for name, extra in [("tiny_unet", ["model.kwargs.migration_velocities=[2000]"]), ("tiny_hgnet", []), ("tiny_inversionnet", []),
                    ("tiny_convnext", []), ("tiny_caformer", [])]:
    build_task(load_config(f"configs/fwi/{name}.yaml", extra)).build_model()
print(sorted(m for m in ("kaggle", "deepwave", "matplotlib", "kagglekit.fwi.physics") if m in sys.modules))
"""


def test_inference_and_the_cli_import_no_kaggle_deepwave_or_matplotlib():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_migration_layers_wavelet_delay_is_the_simulators():
    """migration.py computes it without importing physics (deepwave); it must stay the simulator's value."""
    from kagglekit.fwi.constants import RECORDED_PEAK_SAMPLE
    from kagglekit.fwi.physics.simulate import recorded_peak_sample

    assert RECORDED_PEAK_SAMPLE == recorded_peak_sample() == 72
