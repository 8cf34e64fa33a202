"""The README's quick tour runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_quick_tour_runs(tmp_path, monkeypatch):
    text = README.read_text()
    tour = text.split("## Quick tour", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", tour, flags=re.S)
    assert blocks, "README has no python block in the quick tour"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert (tmp_path / "my-adapter" / "adapter_model.safetensors").is_file()
    assert namespace["base_outputs"].shape == (8, 10)
