"""Thin wrappers over the `kaggle` package: the one module that imports it, inside its functions
(`import kaggle` authenticates at once: credentials come from the user's environment,
KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN, or from ~/.kaggle/).

Every failure (the CLI's own ValueErrors, HTTP and network errors, a reply carrying an error)
becomes one KaggleError line. Every wait (a kernel run, a dataset or model version being processed,
a submission being scored) is the one loop `wait_for`: poll every `poll_s` seconds up to a timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kagglekit.kaggle import KaggleError

FINAL_KERNEL_STATES = {"COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}


def _api():
    try:
        import kaggle
    except ImportError as exc:
        raise KaggleError(f"the kaggle package is not installed ({exc}): pip install 'kagglekit[kaggle]'") from None
    except (Exception, SystemExit) as exc:  # kaggle < 2 raises (or exits) at import without credentials
        raise KaggleError(
            f"import kaggle failed ({type(exc).__name__}: {exc}); set KAGGLE_API_TOKEN or KAGGLE_USERNAME + KAGGLE_KEY, "
            "or put the credentials in ~/.kaggle/"
        ) from None
    return kaggle.api


def _call(what: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """fn(*args, **kwargs), with any failure raised as one KaggleError line naming `what`."""
    try:
        result = fn(*args, **kwargs)
    except KaggleError:
        raise
    except Exception as exc:  # the CLI raises ValueError, KeyError, requests' errors and more
        text = " ".join(str(exc).split())[:600]
        raise KaggleError(f"{what} failed: {type(exc).__name__}: {text}") from exc
    error = getattr(result, "error", None)
    if error:
        raise KaggleError(f"{what} failed: {error}")
    return result


def _log(message: str) -> None:
    print(f"[kaggle] {message}", flush=True)


def username() -> str:
    api = _api()
    name = api.get_config_value(api.CONFIG_NAME_USER)
    if not name:
        raise KaggleError("no Kaggle username configured: set KAGGLE_USERNAME or ~/.kaggle/kaggle.json")
    return name


def push(folder: str | Path, timeout_s: int | None = None) -> tuple[str, int, str]:
    """`kaggle kernels push -p folder` -> (kernel id, version number, url). Sources the server
    dropped (missing, private, misspelt) are an error: the version would run without them."""
    api = _api()
    result = _call(f"pushing {folder}", api.kernels_push, str(folder), str(timeout_s) if timeout_s else None)
    kernel_id = json.loads((Path(folder) / "kernel-metadata.json").read_text())["id"]
    dropped = {
        kind: list(getattr(result, f"invalid_{kind}_sources", None) or [])
        for kind in ("dataset", "competition", "kernel", "model")
    }
    dropped = {k: v for k, v in dropped.items() if v}
    if dropped:
        raise KaggleError(
            f"{kernel_id} version {result.version_number} was pushed without the sources Kaggle rejected: {dropped}; "
            "check they exist and this account can read them, then push again"
        )
    return kernel_id, int(result.version_number), result.url


def kernel_status(kernel: str) -> tuple[str, str]:
    """(status name, failure message) of a kernel's latest run, e.g. ('RUNNING', '')."""
    response = _call(f"status of {kernel}", _api().kernels_status, kernel)
    status = getattr(response.status, "name", str(response.status))
    return status, response.failure_message or ""


def wait_for(
    what: str,
    check: Callable[[], tuple[bool, Any]],
    poll_s: float,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """The one polling loop: call check() every `poll_s` seconds until it returns (True, result);
    (False, state) keeps waiting (a new state is logged); KaggleError after `timeout_s`."""
    start, last = time.monotonic(), None
    while True:
        done, value = check()
        if done:
            return value
        if value != last:
            _log(f"{what}: {value}")
            last = value
        if time.monotonic() - start > timeout_s:
            raise KaggleError(f"{what} still {value} after {timeout_s / 60:.0f} min")
        sleep(poll_s)


def wait_kernel(
    kernel: str, poll_s: float = 30.0, timeout_s: float = 12 * 3600, sleep: Callable[[float], None] = time.sleep
) -> str:
    """Poll until the kernel's run ends; its final status, or KaggleError when it failed or timed out."""

    def check() -> tuple[bool, str]:
        status, message = kernel_status(kernel)
        if status not in FINAL_KERNEL_STATES:
            return False, status
        _log(f"{kernel}: {status}")
        if status != "COMPLETE":
            raise KaggleError(f"{kernel} ended {status}: {message or 'no message'}; its log: kagglekit kaggle output {kernel}")
        return True, status

    return wait_for(kernel, check, poll_s, timeout_s, sleep)


def output(kernel: str, out: str | Path) -> list[Path]:
    """Download the output files of the kernel's latest run and its log into `out`."""
    Path(out).mkdir(parents=True, exist_ok=True)
    files, _ = _call(f"output of {kernel}", _api().kernels_output, kernel, str(out), force=True, quiet=True)
    return [Path(f) for f in files]


def submit(
    competition: str,
    message: str,
    csv: str | Path | None = None,
    kernel: str | None = None,
    kernel_version: int | None = None,
    output_file: str = "submission.csv",
) -> tuple[str, int | None]:
    """Upload `csv` (`kaggle competitions submit -c COMP -f CSV -m MSG`), or, for a code
    competition, the file `output_file` of `kernel` version `kernel_version` (the push's version).
    Returns (Kaggle's reply, the submission's ref when Kaggle gave one)."""
    if kernel is not None:
        if csv is not None or kernel_version is None:
            raise KaggleError("a code-competition submission takes --kernel and --kernel-version (and --output-file), not a CSV")
        api = _api()
        result = _call(
            f"submitting {kernel} version {kernel_version} to {competition}",
            api.competition_submit_code,
            output_file,
            message,
            competition,
            kernel=kernel,
            kernel_version=int(kernel_version),
            quiet=True,
        )
    else:
        if csv is None or not Path(csv).is_file():
            raise KaggleError(f"a CSV submission needs an existing CSV file, got {csv}")
        api = _api()
        result = _call(f"submitting {csv} to {competition}", api.competition_submit, str(csv), message, competition, quiet=True)
    ref = getattr(result, "ref", None)
    return getattr(result, "message", None) or str(result), (int(ref) if ref else None)


def _name(value: Any) -> str:
    return getattr(value, "name", str(value))


def wait_score(
    competition: str,
    message: str,
    ref: int | None = None,
    poll_s: float = 30.0,
    timeout_s: float = 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll the competition's submissions until the one just made (its `ref`, else the newest with
    description `message`) is scored; its public score, or KaggleError when scoring failed."""
    api = _api()

    def check() -> tuple[bool, Any]:
        found = _call(f"submissions of {competition}", api.competition_submissions, competition) or []
        mine = [s for s in found if s is not None and (s.ref == ref if ref else s.description == message)]
        if not mine:
            return False, "not listed yet"
        sub = mine[0]  # newest first
        status = _name(sub.status)
        if status == "ERROR":
            raise KaggleError(f"submission {sub.ref} to {competition} failed: {sub.error_description or 'no message'}")
        if status != "COMPLETE" or sub.public_score in (None, ""):
            return False, status
        try:
            return True, float(sub.public_score)
        except ValueError:
            raise KaggleError(
                f"submission {sub.ref} to {competition}: public score {sub.public_score!r} is not a number"
            ) from None

    return wait_for(f"submission to {competition}", check, poll_s, timeout_s, sleep)


def _lookup(what: str, fn: Callable[..., Any], *args) -> Any | None:
    """fn(*args), or None when Kaggle answers with an HTTP error (absent, or not visible to this account)."""
    from requests.exceptions import HTTPError

    try:
        return fn(*args)
    except HTTPError:
        return None
    except Exception as exc:
        raise KaggleError(f"{what} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from exc


def _dataset_status(api, dataset: str) -> str | None:
    """'ready', 'pending', ... or None when the dataset does not exist (or is not visible)."""
    return _lookup(f"status of dataset {dataset}", api.dataset_status, dataset)


def _instance_version(api, handle: str) -> int:
    """The latest version number of a model instance, 0 when it does not exist (yet)."""
    found = _lookup(f"looking up {handle}", api.model_instance_get, handle)
    return int(found.version_number) if found is not None else 0


def publish_dataset(
    folder: str | Path, notes: str = "", wait: bool = True, poll_s: float = 15.0, timeout_s: float = 3600, sleep=time.sleep
) -> str:
    """Create the dataset of `folder` (dataset-metadata.json) or add a version; wait until ready."""
    api = _api()
    dataset = json.loads((Path(folder) / "dataset-metadata.json").read_text())["id"]
    if _dataset_status(api, dataset) is None:
        _log(f"creating dataset {dataset} from {folder}")
        _call(f"creating {dataset}", api.dataset_create_new, str(folder), public=False, quiet=True, dir_mode="skip")
    else:
        _log(f"new version of dataset {dataset} from {folder}")
        _call(f"versioning {dataset}", api.dataset_create_version, str(folder), notes or "kagglekit", quiet=True, dir_mode="skip")
    if wait:

        def check() -> tuple[bool, str | None]:
            status = _dataset_status(api, dataset)
            if status in ("failed", "deleted"):
                raise KaggleError(f"dataset {dataset} processing {status}")
            return status == "ready", status

        wait_for(f"dataset {dataset}", check, poll_s, timeout_s, sleep)
        _log(f"dataset {dataset} ready")
    return dataset


def publish_model(
    folder: str | Path, notes: str = "", wait: bool = True, poll_s: float = 15.0, timeout_s: float = 3600, sleep=time.sleep
) -> str:
    """Create the model (model-metadata.json) if needed, then its instance
    (model-instance-metadata.json) or a new version of it; returns `owner/model/framework/variation/N`."""
    api = _api()
    folder = Path(folder)
    model = json.loads((folder / "model-metadata.json").read_text())
    instance = json.loads((folder / "model-instance-metadata.json").read_text())
    model_id = f"{model['ownerSlug']}/{model['slug']}"
    handle = f"{instance['ownerSlug']}/{instance['modelSlug']}/{instance['framework']}/{instance['instanceSlug']}"
    if _lookup(f"looking up model {model_id}", api.model_get, model_id) is None:
        _log(f"creating model {model_id}")
        _call(f"creating model {model_id}", api.model_create_new, str(folder))
    before = _instance_version(api, handle)
    if before:
        _log(f"new version of {handle}")
        _call(f"versioning {handle}", api.model_instance_version_create, handle, str(folder), notes or "kagglekit", quiet=True)
    else:
        _log(f"creating {handle}")
        _call(f"creating {handle}", api.model_instance_create, str(folder), quiet=True)
    version = before + 1
    if wait:

        def check() -> tuple[bool, str]:
            latest = _instance_version(api, handle)
            return latest >= version, f"at version {latest}, waiting for {version}"

        wait_for(handle, check, poll_s, timeout_s, sleep)
        _log(f"{handle}/{version} ready")
    return f"{handle}/{version}"
