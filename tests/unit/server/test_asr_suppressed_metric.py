"""parley_asr_suppressed_total{reason} (issue 12): the speech worker's text-guard counters as
the server exports them (every known reason from 0, others as they come)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from server.metrics import ASR_SUPPRESSED_REASONS, LiveStateCollector, parse_text


def test_suppressed_captions_are_a_counter_per_reason() -> None:
    collector = LiveStateCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    values = parse_text(generate_latest(registry).decode())
    for reason in ASR_SUPPRESSED_REASONS:
        assert values[f'parley_asr_suppressed_total{{reason="{reason}"}}'] == 0
    collector.state.asr_suppressed = {"repeat": 2, "something_new": 1}
    values = parse_text(generate_latest(registry).decode())
    assert values['parley_asr_suppressed_total{reason="repeat"}'] == 2
    assert values['parley_asr_suppressed_total{reason="something_new"}'] == 1
