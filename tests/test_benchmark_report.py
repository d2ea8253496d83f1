"""benchmarks/run.py turns the benchmarks' JSON lines into RESULTS.md (no timing here)."""

from __future__ import annotations

from benchmarks.run import BENCHMARKS, report


def test_results_md_has_a_section_per_benchmark_with_where_it_ran():
    results = {
        "trainer_overhead": [{"benchmark": "trainer_overhead", "precision": "bf16",
                              "batch_size": 64, "gankit_images_per_s": 130.0,
                              "bare_images_per_s": 132.0, "ratio": 0.985, "machine": "x86_64",
                              "torch": "2.13.0", "threads": 2, "device": "cpu",
                              "commit": "abc1234", "date": "2026-12-01"}],
        "throughput": [{"benchmark": "matmul_peak", "fp32_gflop_per_s": 170.0,
                        "bf16_gflop_per_s": 410.0, "machine": "x86_64"},
                       {"benchmark": "throughput", "family": "dcgan", "speedup": 1.5}],
    }  # fmt: skip
    text = report(results)
    assert "| bf16 | 64 | 130.0 | 132.0 | 0.985 |" in text
    assert "commit abc1234, 2026-12-01" in text
    assert "fp32 170.0 GFLOP/s, bf16 410.0 GFLOP/s" in text
    assert "| dcgan |" in text
    for name in BENCHMARKS:
        assert f"benchmarks.{name}" in text or "Not run yet." in text
    assert text.count("Not run yet.") == 3  # time_to_quality, eval_speed, translate_speed
