"""Lab 06 on paper: the ZeRO formula against the paper's own figure, the alpha-beta fit, the cluster model, the shard
table and the panel."""

import pytest

from labkit.chapters.ch06_distributed import paper
from labkit.chapters.ch06_distributed.panel import cluster_panel
from labkit.core import LabkitError


@pytest.mark.parametrize(("stage", "gb"), [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_formula_reproduces_figure_1(stage, gb):
    # ZeRO paper Figure 1 prints one decimal: the formula must round to it
    assert paper.zero_bytes(7.5e9, 64, stage)["total"] / 1e9 == pytest.approx(gb, abs=0.05)


@pytest.mark.parametrize(("world", "stage"), [(0, 1), (2, 4), (2, -1), (1.5, 1), (True, 1)])
def test_zero_rejects_bad_world_and_stage(world, stage):
    with pytest.raises(LabkitError):
        paper.zero_bytes(1e9, world, stage)


def test_ring_and_alpha_beta_fit():
    assert paper.ring_allreduce_bytes(1000, 2) == 1000 and paper.ring_allreduce_bytes(1000, 4) == 1500
    alpha, bw = 20e-6, 2e9
    rows = [{"collective": "all_reduce", "bytes": n, "time_s": alpha + paper.ring_allreduce_bytes(n, 2) / bw}
            for n in (1e3, 1e5, 1e7)]
    fit = paper.fit_alpha_beta(rows, 2).iloc[0]
    assert fit["alpha_us"] == pytest.approx(20, rel=1e-3) and fit["bandwidth_gbs"] == pytest.approx(2, rel=1e-6)
    with pytest.raises(LabkitError, match="collectives"):
        paper.fit_alpha_beta([{"collective": "all_reduce", "bytes": 10, "time_s": None}], 2)


def test_published_checks_hold():
    table = paper.published_checks()
    assert len(table) == 6 and table["holds"].all()


def test_cluster_model_and_bad_input():
    one = paper.plan_cluster(paper.Cluster(n_params=7e9, gpus=1, stage=0))
    assert one.comm_s == 0 and one.efficiency == 1 and one.total_gib == pytest.approx(16 * 7e9 / 2**30)
    big = paper.plan_cluster(paper.Cluster(n_params=7e9, gpus=1024, stage=3, interconnect="Ethernet"))
    assert big.efficiency < paper.plan_cluster(paper.Cluster(n_params=7e9, gpus=1024, stage=3,
                                                             interconnect="NVLink")).efficiency
    assert not paper.plan_cluster(paper.Cluster(n_params=70e9, gpus=8, stage=3)).fits
    assert paper.plan_cluster(paper.Cluster(n_params=70e9, gpus=8, stage=3, offload="optimizer")).fits
    for bad in ({"gpus": 0}, {"stage": 5}, {"offload": "disk"}, {"interconnect": "carrier pigeon"},
                {"stage": 2, "offload": "optimizer+params"}, {"mfu": 0}):
        with pytest.raises(LabkitError):
            paper.Cluster(**bad)


def test_shard_table_compares_with_the_formula():
    n = 1000
    single = {"n_params": n, "losses": [2.0, 1.5]}
    rank = {"losses": [2.0, 1.5], "param_bytes": 4 * n / 2, "param_bytes_in_step": 4 * n / 2, "grad_bytes": 4 * n / 2,
            "optim_bytes": 12 * n / 2}
    table = paper.shard_table({"zero3": [rank, rank]}, single)
    assert (table["error"].abs() < 1e-12).all() and table["loss_gap"].max() == 0


def test_cluster_panel_driven_from_code():
    panel = cluster_panel()
    panel.size.value, panel.gpus.value = 70e9, 8
    assert not panel.plan.fits and "NOT fit" in panel.message.value
    panel.offload.value = "optimizer"
    assert panel.plan.fits and len(panel.figure.data) == 3
    panel.stage.value = 2
    panel.offload.value = "optimizer+params"
    assert "needs stage 3" in panel.message.value
    with pytest.raises(LabkitError):
        cluster_panel(paper.Cluster(gpus=6))
