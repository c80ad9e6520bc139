"""`glia simulate --metrics-interval`: the cluster's metrics_interval_s from the command line."""

from __future__ import annotations

from .test_cli import check_error, invoke, only_json


def test_the_metrics_interval_reaches_the_cluster_and_changes_hra() -> None:
    base = ["simulate", "--router", "hra", "--duration", "60", "--in-process", "--json"]
    exact = only_json(invoke(*base).stdout)
    stale = only_json(invoke(*base, "--metrics-interval", "2").stdout)
    assert exact["cluster"]["metrics_interval_s"] == 0.0
    assert stale["cluster"]["metrics_interval_s"] == 2.0
    assert stale["num_requests"] == exact["num_requests"]
    assert stale["mean_e2e_s"] != exact["mean_e2e_s"]  # HRA reads scraped KV usage and queues


def test_a_negative_metrics_interval_is_a_one_line_error() -> None:
    msg = check_error(invoke("simulate", "--metrics-interval", "-1", "--in-process"))
    assert msg == (
        "cluster metrics_interval_s is -1.0: give seconds >= 0 between metrics scrapes, e.g. 0.5 "
        "(0 shows policies exact replica state)"
    )
