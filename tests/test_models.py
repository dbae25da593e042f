"""The model catalog and `diffill models list|pull|rm`, against a hub STAND-IN.

The hub here is tests/hub_standin.py on loopback (huggingface_hub pointed at it
through ``HF_ENDPOINT``), serving the tiny random checkpoints of
tests/fixtures/families under the catalog's real hub ids and pinned revisions.
It is not the real Hugging Face Hub: what the real hub does beyond the
documented API calls used here (Xet storage, CDN redirects, authentication,
rate limits) was never exercised.
"""
from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
from hub_standin import HubStandIn, repo_from_dir  # tests/ is on sys.path

from engine import catalog, model_store
from engine.backends.native_loader import load_native, quantization_kwargs
from engine.catalog import memory_estimate
from engine.errors import DeviceError, ModelNotFoundError
from engine.machine import Gpu, Machine
from engine.model_fit import assess, check_fits, recommend

FIXTURES = Path(__file__).parent / "fixtures" / "families"
REQUIRED = ("diffill-tiny", "diffusiongemma-26b-a4b", "dream-coder-7b", "dreamon-7b", "diffucoder-7b",
            "llada-8b", "open-dcoder-0.5b")
#: repository code a real Dream repository carries: pull must never fetch it
REMOTE_CODE = {"modeling_dream.py": b"raise SystemExit('remote code ran')\n"}


# --- the catalog data -----------------------------------------------------------

def test_catalog_names_the_required_models_with_sources_for_every_figure():
    models = catalog.models()
    assert set(REQUIRED) <= set(models)
    for model in models.values():
        assert model.params_source and model.download_source and model.licence_source, model.name
        if model.bundled:
            continue
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", model.hub_id or ""), model.name
        if model.revision is None:  # an unpinned pull must say so in the data
            assert "NOT VERIFIED" in model.revision_source, model.name
        assert model.files and not any(p.endswith(".py") for p in model.files), model.name
        for figure in model.infill:
            assert figure.source and figure.setting, model.name


_HEDGES = ("estimate", "not verified", "not read from the hub", "not available here")


def test_figures_not_read_from_the_hub_are_marked_unverified():
    """A source that hedges (an estimate, a third-party sighting) must have its field in ``unverified``."""
    for model in catalog.models().values():
        sources = {"revision": model.revision_source, "params_b": model.params_source,
                   "download_gb": model.download_source, "licence": model.licence_source}
        assert set(model.unverified) <= set(sources) | {"infill"}, model.name
        for field, source in sources.items():
            hedged = any(h in source.lower() for h in _HEDGES)
            assert hedged == (field in model.unverified), (model.name, field, source)


def test_memory_figures_follow_the_catalog_rule():
    """Every memory figure is the stated estimate (engine.catalog.memory_estimate), not a guess."""
    for model in catalog.models().values():
        for variant, table in model.memory_gb.items():
            for device, value in table.items():
                want = memory_estimate(model.params_b, model.embedding_params_b, variant, device)
                assert value == want, (model.name, variant, device, value, want)


def test_variants_by_name():
    assert catalog.lookup("dream-coder-7b:int4").variant == "int4"
    assert catalog.lookup("Dream-org/Dream-Coder-v0-Instruct-7B").model.name == "dream-coder-7b"
    assert catalog.lookup("not-in-the-catalog") is None
    with pytest.raises(ModelNotFoundError, match="no 'int9' variant"):
        catalog.lookup("dream-coder-7b:int9")


# --- fit and recommendation ----------------------------------------------------

def _machine(gpu_gb: float | None, ram_gb: float = 32.0) -> Machine:
    gpus = (Gpu("Test GPU", gpu_gb, gpu_gb),) if gpu_gb else ()
    return Machine(gpus=gpus, ram_total_gb=ram_gb, ram_available_gb=ram_gb, cpu_fast_bf16=False)


def _best(machine: Machine) -> str | None:
    found = recommend([(m, assess(m, machine, False, 1000.0)) for m in catalog.models().values()])
    if found is None:
        return None
    model, fit = found
    return model.name if fit.gpu_variant in (None, "bf16") else f"{model.name}:{fit.gpu_variant}"


def test_recommendation_follows_gpu_memory_then_published_score():
    assert _best(_machine(80.0)) == "dream-coder-7b"  # the best published infill figure, bf16
    assert _best(_machine(8.0)) == "dream-coder-7b:int4"
    assert _best(_machine(None, ram_gb=8.0)) == "open-dcoder-0.5b"  # CPU only
    assert _best(_machine(None, ram_gb=1.0)) is None


def test_a_load_that_does_not_fit_is_refused_with_the_numbers():
    choice = catalog.lookup("dream-coder-7b")
    with pytest.raises(DeviceError, match=r"needs ~17\.6 GB of GPU memory, 8\.0 GB is free.*dream-coder-7b:int4"):
        check_fits(choice, "cuda", _machine(8.0))
    with pytest.raises(DeviceError, match=r"needs ~33\.1 GB of RAM.*4\.0 GB is available.*--force"):
        check_fits(choice, "cpu", _machine(None, ram_gb=4.0))
    check_fits(choice, "cuda", _machine(24.0))  # fits: no error
    check_fits(choice, "cpu", _machine(None, ram_gb=20.0), "bfloat16")  # 16-bit on the CPU: 17.1 GB fits
    with pytest.raises(DeviceError, match=r"needs ~33\.1 GB of RAM on the CPU \(float32\)"):
        check_fits(choice, "cpu", _machine(None, ram_gb=20.0))


def test_quantized_weights_are_refused_without_cuda():
    with pytest.raises(DeviceError, match="int4 weights need a CUDA GPU"):
        quantization_kwargs("int4", "cpu")
    with pytest.raises(DeviceError, match="int8 weights need a CUDA GPU"):
        load_native(str(FIXTURES / "llada"), "llada", device="cpu", torch_dtype=None, quantization="int8")


def test_a_catalog_model_that_is_not_downloaded_names_the_pull_command(tmp_path, monkeypatch):
    from engine.loading import resolve_model

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"run `diffill models pull dream-coder-7b`"):
        resolve_model("dream-coder-7b")
    with pytest.raises(ModelNotFoundError, match=r"dream-coder-7b:int4 is not downloaded.*pull dream-coder-7b`"):
        resolve_model("dream-coder-7b:int4")


# --- pull / list / rm against the stand-in --------------------------------------

@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The stand-in hub serving dream-coder-7b and open-dcoder-0.5b at their pinned revisions."""
    dream = catalog.lookup("dream-coder-7b").model
    dcoder = catalog.lookup("open-dcoder-0.5b").model
    repos = [repo_from_dir(dream.hub_id, FIXTURES / "dream-coder", REMOTE_CODE, commit=dream.revision),
             repo_from_dir(dcoder.hub_id, FIXTURES / "open-dcoder", commit=dcoder.revision)]
    for repo in repos:  # the fixtures' own expected outputs are no part of a model repository
        for name in ("reference.json", "reference.safetensors"):
            repo.files.pop(name, None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # another test's load may have set it
    with HubStandIn(repos) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _pull(name: str) -> tuple[Path, str]:
    out = io.StringIO()
    path = model_store.pull(catalog.lookup(name).model, out=out)
    return path, out.getvalue()


def _fetched(hub: HubStandIn) -> list[str]:
    return [path.rsplit("/", 1)[-1] for method, path, _ in hub.log if method == "GET" and "/resolve/" in path]


def test_pull_fetches_the_pinned_files_with_progress_and_checks_them(hub):
    model = catalog.lookup("dream-coder-7b").model
    assert not model_store.is_downloaded(model)
    path, out = _pull("dream-coder-7b")
    assert path.name == model.revision and model_store.is_downloaded(model)
    assert "pulling dream-coder-7b" in out and "[1/5]" in out and "[5/5] vocab.json" in out
    assert sorted(_fetched(hub)) == ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json",
                                     "vocab.json"]  # no modeling_dream.py: nothing to execute
    assert all(f"/resolve/{model.revision}/" in p for m, p, _ in hub.log if "/resolve/" in p)
    assert (path / "model.safetensors").read_bytes() == (FIXTURES / "dream-coder" / "model.safetensors").read_bytes()
    hub.log.clear()
    _pull("dream-coder-7b")  # everything is there and verified: nothing is fetched again
    assert _fetched(hub) == []


def test_a_dropped_connection_resumes_with_a_range_request(hub, monkeypatch):
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 4096)  # so bytes reach the disk before the cut
    hub.faults.cut_once.add("model.safetensors")
    path, _ = _pull("dream-coder-7b")
    ranges = [r for m, p, r in hub.log if m == "GET" and p.endswith("/model.safetensors")]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert (path / "model.safetensors").read_bytes() == (FIXTURES / "dream-coder" / "model.safetensors").read_bytes()


def test_a_pull_interrupted_by_a_server_error_resumes_with_the_missing_files_only(hub):
    model = catalog.lookup("dream-coder-7b").model
    hub.faults.fail.add("model.safetensors")
    with pytest.raises(model_store.DownloadError, match="model.safetensors: download failed"):
        _pull("dream-coder-7b")
    assert not model_store.is_downloaded(model)
    hub.faults.fail.clear()
    hub.log.clear()
    _pull("dream-coder-7b")
    assert _fetched(hub) == ["model.safetensors", "tokenizer_config.json", "vocab.json"]
    assert model_store.is_downloaded(model)


def test_a_file_that_does_not_match_the_hub_hash_is_deleted_and_the_pull_refused(hub):
    model = catalog.lookup("dream-coder-7b").model
    hub.faults.corrupt.add("model.safetensors")
    with pytest.raises(model_store.HashMismatchError, match="model.safetensors.*SHA-256"):
        _pull("dream-coder-7b")
    assert not (model_store.snapshot_dir(model) / "model.safetensors").exists()
    assert not model_store.is_downloaded(model)


def test_a_repository_without_the_weights_is_not_taken_for_a_model(hub):
    """Files the catalog names but that do not form a checkpoint (no weights here) fail the pull."""
    model = catalog.lookup("dream-coder-7b").model
    del hub.repos[model.hub_id].files["model.safetensors"]
    with pytest.raises(model_store.DownloadError, match="not make a loadable checkpoint"):
        _pull("dream-coder-7b")
    assert not model_store.is_downloaded(model)


def test_too_little_disk_is_refused_before_anything_downloads(hub):
    hub.faults.huge["model.safetensors"] = 10**15  # a petabyte
    with pytest.raises(model_store.DiskSpaceError, match=r"needs 1000000\.00 GB more disk.*GB free"):
        _pull("dream-coder-7b")
    assert _fetched(hub) == []


@pytest.mark.slow  # loads models
def test_list_pull_offline_use_and_rm(hub, monkeypatch, capsys):
    from diffill.models import run_list, run_rm
    from engine import load_engine
    from engine.types import InfillRequest

    def listed() -> dict[str, dict]:
        assert run_list(argparse.Namespace(json=True)) == 0
        return {e["name"]: e for e in json.loads(capsys.readouterr().out)}

    before = listed()
    assert set(REQUIRED) <= set(before)
    for entry in before.values():
        assert {"name", "hub_id", "family", "params", "download_gb", "downloaded", "fits"} <= set(entry)
    assert before["diffill-tiny"]["downloaded"] and not before["open-dcoder-0.5b"]["downloaded"]

    _pull("open-dcoder-0.5b")
    assert listed()["open-dcoder-0.5b"]["downloaded"]

    hub.__exit__(None, None, None)  # the hub is gone: use after pull is offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from engine import machine as machine_module

    real_probe = machine_module.probe
    monkeypatch.setattr(machine_module, "probe", lambda: _machine(None, ram_gb=0.5))  # a machine too small
    with pytest.raises(DeviceError, match=r"open-dcoder-0\.5b needs ~3\.1 GB of RAM.*0\.5 GB is available"):
        load_engine("open-dcoder-0.5b", device="cpu")
    load_engine("open-dcoder-0.5b", device="cpu", force=True)  # --force loads it anyway
    monkeypatch.setattr(machine_module, "probe", real_probe)
    engine = load_engine("open-dcoder-0.5b", device="cpu")
    result = engine.infill(InfillRequest(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=4))
    assert result.forwards >= 1 and engine.describe()["model"].endswith(model_store.snapshot_dir(
        catalog.lookup("open-dcoder-0.5b").model).name)

    assert run_rm(argparse.Namespace(name="open-dcoder-0.5b")) == 0
    assert "removed open-dcoder-0.5b" in capsys.readouterr().out
    assert not listed()["open-dcoder-0.5b"]["downloaded"]
    assert run_rm(argparse.Namespace(name="diffill-tiny")) != 0  # bundled: refused


@pytest.mark.slow
def test_cli_lists_the_catalog_and_refuses_a_model_that_is_not_downloaded(tmp_path):
    """The real `diffill` command: `models list --json`, and `fill --model NAME` without the weights
    exits non-zero with one line naming the pull command (nothing downloads)."""
    from test_cli_fill import assert_one_line_error, diffill

    source = tmp_path / "x.py"
    source.write_text("def f(x):\n    return \n")
    env_cache = {"HF_HUB_CACHE": str(tmp_path / "cache")}
    proc = diffill("models", "list", "--json", env=env_cache)
    assert proc.returncode == 0, proc.stderr
    names = [entry["name"] for entry in json.loads(proc.stdout)]
    assert set(REQUIRED) <= set(names)
    proc = diffill("fill", "--model", "dream-coder-7b", str(source), "--line", "2", "--col", "11", env=env_cache)
    assert_one_line_error(proc, "diffill models pull dream-coder-7b")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_unpinned_catalog_entry_pulls_main_and_remembers_its_commit(hub, tmp_path, monkeypatch):
    """A catalog (DIFFILL_CATALOG) entry without a revision: main is resolved, reported and recorded,
    so the model counts as downloaded afterwards."""
    data = json.loads(catalog.catalog_path().read_text())
    for entry in data["models"]:
        if entry["name"] == "open-dcoder-0.5b":
            entry["revision"] = None
    custom = tmp_path / "catalog.json"
    custom.write_text(json.dumps(data))
    monkeypatch.setenv(catalog.ENV_VAR, str(custom))
    model = catalog.lookup("open-dcoder-0.5b").model
    assert model.revision is None and not model_store.is_downloaded(model)
    path, out = _pull("open-dcoder-0.5b")
    served = hub.repos[model.hub_id].commit
    assert f"got commit {served}" in out and path.name == served
    assert model_store.is_downloaded(model) and model_store.snapshot_dir(model) == path


def test_the_catalog_sampler_settings_are_the_ones_the_backends_apply():
    """The catalog documents the settings the code uses: a change on either side must show here."""
    from engine.backends import dreamon_backend
    from engine.types import InfillRequest

    default = InfillRequest(prefix="", suffix="")
    for model in catalog.models().values():
        sampler = model.sampler
        if sampler.get("sampler") == "threshold":
            assert sampler["threshold"] == default.threshold and default.sampler == "threshold", model.name
    dreamon = catalog.lookup("dreamon-7b").model.sampler
    assert dreamon["initial_masks"] == dreamon_backend.INITIAL_MASKS
    assert dreamon["steps_per_token"] == dreamon_backend.STEPS_PER_TOKEN
    assert dreamon["top_p"] == dreamon_backend.TOP_P


def test_the_server_reports_a_catalog_model_that_is_not_downloaded(tmp_path, monkeypatch):
    """The server's load error (shown once as a message by lsp_server.engine_host) names the pull."""
    from lsp_server.config import Settings
    from lsp_server.engine_host import load_with_fallbacks, one_line

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as caught:
        load_with_fallbacks(Settings(model="llada-8b", device="cpu"))
    assert "run `diffill models pull llada-8b`" in one_line(caught.value)


#: catalog name -> fixture directory of the same family (tests/fixtures/families)
FAMILY_FIXTURES = {"dream-coder-7b": "dream-coder", "diffucoder-7b": "diffucoder", "dreamon-7b": "dreamon",
                   "llada-8b": "llada", "open-dcoder-0.5b": "open-dcoder"}


@pytest.mark.slow  # loads models
def test_every_native_family_pulls_and_runs_offline_by_its_catalog_name(tmp_path, monkeypatch):
    """Each native catalog model, served by the stand-in as its family's tiny checkpoint (with a remote-code
    file beside it), is pulled with the catalog's file patterns and then filled with, offline, by name."""
    from engine import load_engine
    from engine.types import InfillRequest

    repos = []
    for name, fixture in FAMILY_FIXTURES.items():
        model = catalog.lookup(name).model
        repo = repo_from_dir(model.hub_id, FIXTURES / fixture, REMOTE_CODE, commit=model.revision)
        for extra in ("reference.json", "reference.safetensors", "reference_generation.json"):
            repo.files.pop(extra, None)
        repos.append(repo)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with HubStandIn(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        for name in FAMILY_FIXTURES:
            _pull(name)
        assert not [p for m, p, _ in hub.log if p.endswith(".py")]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in FAMILY_FIXTURES:
        engine = load_engine(name, device="cpu", force=True)  # force: the real 7B figures exceed this machine
        assert engine.describe()["model"] == str(model_store.snapshot_dir(catalog.lookup(name).model)), name
        backend = engine.backend
        assert backend.__class__.__name__ == ("DreamOnBackend" if name == "dreamon-7b" else "MaskedDiffusionBackend")
        result = engine.infill(InfillRequest(prefix="x = ", suffix="\n", max_new_tokens=3))
        assert result.forwards >= 1, name
