"""usage.* settings: the spill and dead-letter files sit next to the usage database unless
set, relative paths are relative to the config file, and a size of 0 turns a file off."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmrelay.config import UsageConfig
from llmrelay.obs.usage import UsageRecorder
from tests.obs.support import good


class NullStore:
    def write(self, records: object) -> None:
        pass


def test_spill_and_dead_letter_files_default_next_to_the_usage_database() -> None:
    cfg = UsageConfig(path="data/usage.db")
    assert cfg.file(cfg.spill_path, ".spill.jsonl", "/etc/llmrelay/llmrelay.yaml") == Path(
        "/etc/llmrelay/data/usage.spill.jsonl"
    )
    assert cfg.file(None, ".dead-letter.jsonl", "<memory>") == Path("data/usage.dead-letter.jsonl")
    assert cfg.file("/var/spill.jsonl", ".spill.jsonl", "/etc/x.yaml") == Path("/var/spill.jsonl")
    assert cfg.file("s.jsonl", ".spill.jsonl", "/etc/x.yaml") == Path("/etc/s.jsonl")


@pytest.mark.parametrize(
    "bad",
    [{"spill_max_mb": -1}, {"batch_size": 0}, {"shutdown_timeout_s": -1}, {"queue_size": 0}],
)
def test_out_of_bounds_usage_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        UsageConfig(**bad)  # type: ignore[arg-type]


def test_a_spill_size_of_zero_means_a_full_queue_drops(tmp_path: Path) -> None:
    cfg = UsageConfig(path=str(tmp_path / "u.db"), queue_size=1, spill_max_mb=0)
    rec = UsageRecorder.from_config(NullStore(), cfg, "<memory>")  # type: ignore[arg-type]
    rec.record(good(1))
    rec.record(good(2))
    assert (rec.queue_depth, rec.dropped, rec.spilled) == (1, 1, 0)
    assert list(tmp_path.iterdir()) == []
