"""Labels, roles (recorded, else registered) and the RQ5 sweep lines from recorded config."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dml_bench.report.runs import (
    MethodRoles,
    Prepared,
    headline_labels,
    method_roles,
    nanmean,
    prepare,
    quarters,
    sweep_series,
)
from dml_bench.store.read import load_runs


def test_prepare_labels_and_orders_curves(prep: Prepared) -> None:
    assert prep.datasets == ["hershey"]
    order = list(dict.fromkeys(prep.curves["label"]))
    assert order[0] == "proxy_nca" and order[-1] == "triplet_semihard"  # proxy methods first
    assert prep.headline_labels == {"proxy_nca"}  # dynamic runs are all sweep variants


def test_roles_fall_back_to_the_registry(prep: Prepared) -> None:
    assert prep.roles["proxy_nca"] == MethodRoles("proxy", "proxies_per_class", "static")
    assert prep.roles["proxy_nca_dynamic"].proxy_assignment == "dynamic"
    assert prep.roles["triplet_semihard"] == MethodRoles("pair")
    assert prep.roles["proxy_nca"].count_column == "cfg.proxies_per_class"


def test_recorded_roles_win_and_unknown_methods_have_none() -> None:
    runs = pd.DataFrame(
        {
            "method": ["proxy_nca", "circle_proxy", "mystery"],
            "family": ["proxy", "proxy", "proxy"],
            "proxy_count_field": ["proxies_per_class", "circles", None],
            "proxy_assignment": [None, "dynamic", None],
        }
    )
    roles = method_roles(runs)
    assert roles["circle_proxy"] == MethodRoles("proxy", "circles", "dynamic")
    assert roles["proxy_nca"] == MethodRoles("proxy", "proxies_per_class", None)  # as recorded
    assert roles["mystery"] == MethodRoles("proxy")  # not registered, nothing recorded


ROLES = {
    "proxy_nca": MethodRoles("proxy", "proxies_per_class", "static"),
    "proxy_nca_dynamic": MethodRoles("proxy", "proxies_per_class", "dynamic"),
}


def test_headline_is_static_proxy_methods_run_as_registered() -> None:
    runs = pd.DataFrame(
        {
            "method": ["proxy_nca", "proxy_nca", "circle_proxy", "proxy_nca_dynamic", "trip"],
            "variant": [
                "proxy_nca",
                "proxy_nca[scale=3]",
                "circle_proxy",
                "proxy_nca_dynamic",
                "trip",
            ],
            "label": ["proxy_nca [random]", "proxy_nca[scale=3]", "circle_proxy", "dyn", "trip"],
        }
    )
    roles = ROLES | {
        "circle_proxy": MethodRoles("proxy", None, "static"),
        "trip": MethodRoles("pair"),
    }
    assert headline_labels(runs, roles) == {"proxy_nca [random]", "circle_proxy"}


def _runs(rows: list[tuple[str, dict[str, object], dict[str, object]]]) -> pd.DataFrame:
    """(method, swept, config) per run; no run options or sampler split."""
    return pd.DataFrame(
        [
            {
                "method": m,
                "swept": json.dumps(swept),
                "setup_label": "",
                "split_sampler": False,
                **{f"cfg.{k}": v for k, v in config.items()},
            }
            for m, swept, config in rows
        ]
    )


@pytest.mark.parametrize(
    ("method", "swept", "series"),
    [
        ("proxy_nca", {}, "proxy_nca"),
        ("proxy_nca", {"proxies_per_class": 2}, "proxy_nca"),
        (
            "proxy_nca_dynamic",
            {"proxies_per_class": 0.5, "scale": 3.0},
            "proxy_nca_dynamic[scale=3.0]",
        ),
        ("proxy_nca", {"m_per_class": 4, "proxies_per_class": 2}, "proxy_nca[m_per_class=4]"),
        ("proxy_nca", {"m_per_class": None}, "proxy_nca[m_per_class=None]"),
    ],
)
def test_sweep_series_drops_only_the_proxy_count(method: str, swept: dict, series: str) -> None:
    runs = _runs([(method, swept, {"proxies_per_class": 1})])
    assert list(sweep_series(runs, ROLES)) == [series]


def test_sweep_series_keeps_run_options_and_split_samplers() -> None:
    runs = _runs([("proxy_nca", {"proxies_per_class": 2}, {})] * 2)
    runs["setup_label"] = [" {lr=0.01}", ""]
    runs["split_sampler"] = [False, True]
    runs["sampler"] = ["random", "random"]
    assert list(sweep_series(runs, ROLES)) == ["proxy_nca {lr=0.01}", "proxy_nca [random]"]


def test_sweep_series_without_swept_column_names_differing_non_default_fields() -> None:
    runs = _runs(
        [
            ("proxy_nca", {}, {"m_per_class": None, "proxies_per_class": 1, "scale": 9.0}),
            ("proxy_nca", {}, {"m_per_class": None, "proxies_per_class": 2, "scale": 9.0}),
            ("proxy_nca", {}, {"m_per_class": 4, "proxies_per_class": 1, "scale": 9.0}),
            ("circle_proxy", {}, {"m_per_class": 4, "circles": 1}),
            ("circle_proxy", {}, {"m_per_class": 8, "circles": 1}),
        ]
    ).drop(columns="swept")
    names = list(sweep_series(runs, ROLES))
    # registered default m_per_class=None is not named; circle_proxy has no defaults to omit
    assert names == [
        "proxy_nca",
        "proxy_nca",
        "proxy_nca[m_per_class=4]",
        "circle_proxy[m_per_class=4]",
        "circle_proxy[m_per_class=8]",
    ]


def test_quarters_and_nanmean() -> None:
    curve = pd.DataFrame({"step": [0, 100, 200, 300, 400]})
    first, last = quarters(curve)
    assert list(first["step"]) == [0, 100] and list(last["step"]) == [300, 400]
    assert nanmean([1.0, float("nan"), 3.0]) == 2.0
    assert nanmean([float("nan")]) != nanmean([float("nan")])  # NaN


def test_prepare_on_an_empty_dataset_list(make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    assert prep.headline_labels == frozenset()
