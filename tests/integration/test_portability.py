"""The LLM library runs on any CPU of its architecture: no AMX or AVX-512 code in it, and a long
prompt (the kind that reaches the matrix kernels) is answered. Both run in child processes, so a
library that crashes fails these tests instead of killing the suite."""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rag import doctor
from rag.errors import RagError

# AMX tile instructions, and any use of a 512-bit register (AVX-512).
AMX = re.compile(
    r"\b(tileloadd|tileloaddt1|tilestored|tdpbssd|tdpbsud|tdpbusd|tdpbuud|tdpbf16ps|ldtilecfg)\b"
)
ZMM = re.compile(r"%zmm\d+")


def _ggml_cpu_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.submodule_search_locations, "llama-cpp-python is not installed"
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return sorted(lib.glob("libggml-cpu*.so")) or sorted(lib.glob("libggml*.so"))


@pytest.mark.skipif(platform.machine() != "x86_64", reason="AMX and AVX-512 exist on x86-64 only")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_llm_library_has_no_amx_or_avx512_code():
    libs = _ggml_cpu_libraries()
    assert libs, "no libggml-cpu in the llama_cpp package"
    for lib in libs:
        asm = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=True
        ).stdout
        assert "vfmadd" in asm or "vpmaddubsw" in asm, f"{lib}: no AVX2 kernels found (not a SIMD build?)"
        amx = AMX.findall(asm)
        assert not amx, f"{lib}: {len(amx)} AMX instructions, e.g. {amx[0]}"
        zmm = ZMM.findall(asm)
        assert not zmm, f"{lib}: {len(zmm)} AVX-512 register uses"


def test_llm_answers_a_300_token_prompt_in_a_child_process(settings):
    from rag.llm import model_file

    result = doctor.run_probe(model_file(settings.llm))
    assert result["prompt_tokens"] >= doctor.PROBE_PROMPT_TOKENS
    assert result["generated"].strip()
    features = doctor.compiled_features(result["system_info"])
    assert features.get("AVX2") if platform.machine() == "x86_64" else True
    assert not features.get("AMX_INT8") and not features.get("AVX512")


def test_a_crashing_llm_becomes_one_line_that_says_how_to_rebuild(tmp_path, monkeypatch):
    # A child that dies of SIGILL, as a library built for another CPU does.
    class Died:
        returncode = -4
        stdout = ""
        stderr = ""

    monkeypatch.setattr(doctor.subprocess, "run", lambda *a, **k: Died())
    with pytest.raises(RagError) as e:
        doctor.run_probe(tmp_path / "model.gguf")
    msg = str(e.value)
    assert "\n" not in msg and "Illegal instruction" in msg and "scripts/build-llm.sh" in msg


def test_build_check_flags_unportable_and_missing_instruction_sets():
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | AMX_INT8 = 0 | "
    assert doctor.check_build(info, {"pni", "avx", "avx2", "f16c", "fma"}).ok
    amx = doctor.check_build(info.replace("AMX_INT8 = 0", "AMX_INT8 = 1"), None)
    assert not amx.ok and "AMX_INT8" in amx.detail and "build-llm.sh" in amx.fix
    if platform.machine() == "x86_64":
        old_cpu = doctor.check_build(info, {"pni", "avx"})
        assert not old_cpu.ok and "AVX2" in old_cpu.detail


def test_doctor_reports_every_check_on_one_line_each(real_index):
    from tests.conftest import run_rag

    out = run_rag("doctor", "--index", str(real_index))
    lines = out.stdout.strip().splitlines()
    assert [line.split()[1].rstrip(":") for line in lines] == [
        "python",
        "packages",
        "embedder",
        "llm",
        "llm-build",
        "llm-adapter",
        "index",
    ], out.stdout + out.stderr
    assert all(line.startswith("ok ") for line in lines), out.stdout
    assert out.returncode == 0


def test_doctor_names_a_missing_index_and_what_to_run(tmp_path):
    from tests.conftest import run_rag

    out = run_rag("doctor", "--index", str(tmp_path / "none"))
    assert out.returncode == 1
    assert "problem  index:" in out.stdout and "rag index" in out.stdout


def test_adapter_check_names_a_changed_adapter_and_a_foreign_base(settings, tmp_path):

    from rag.answer import line
    from rag.llm import model_file

    base = model_file(settings.llm)
    assert doctor.check_adapter(settings, base).ok
    other = tmp_path / "mine.gguf"
    other.write_bytes(b"GGUF" + bytes(64))
    check = doctor.check_adapter(settings, other)
    assert check.ok and "not used" in check.detail
    folder = tmp_path / "llm"
    shutil.copytree(line.ADAPTER_DIR, folder)
    (folder / line.ADAPTER_FILE).write_bytes(b"tampered")
    check = doctor.check_adapter(settings, base, folder)
    assert not check.ok and "is not the trained" in check.detail
