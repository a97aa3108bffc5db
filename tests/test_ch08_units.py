"""Lab 08 numbers without a server: KV bytes, the roofline, the load-test readers, the panel's prediction, and the
sentence every bad input gets."""

import pandas as pd
import pytest
from transformers import LlamaConfig

from labkit.chapters.ch08_deployment import latency, load
from labkit.chapters.ch08_deployment.panel import ServingCosts, predict
from labkit.chapters.ch08_deployment.server import Server, free_port, weights_sha256
from labkit.core import LabkitError

SMOLLM2 = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3)


def test_kv_bytes_per_token_smollm2():
    assert latency.kv_bytes_per_token(SMOLLM2) == 2 * 30 * 3 * 64 * 4 == 46080
    assert latency.kv_bytes_per_token(SMOLLM2, dtype_bytes=2) == 23040
    with pytest.raises(LabkitError, match="dtype_bytes"):
        latency.kv_bytes_per_token(SMOLLM2, dtype_bytes=0)
    with pytest.raises(LabkitError, match="model.config"):
        latency.kv_bytes_per_token(object())


def test_roofline_and_its_errors():
    assert latency.roofline_tokens_per_s(538e6, 26.9) == pytest.approx(50.0, rel=1e-3)
    with pytest.raises(LabkitError, match="measure_copy_bandwidth_gbs"):
        latency.roofline_tokens_per_s(0, 10.0)


TABLE = pd.DataFrame({"concurrency": [1, 2, 4, 8], "requests_per_s": [3.0, 5.0, 5.4, 5.5],
                      "p95_s": [0.3, 0.5, 0.9, 1.8]})


def test_knee_and_p95_target():
    assert load.knee(TABLE) == 2
    assert load.concurrency_for_p95(TABLE, 1.0) == 4
    assert load.concurrency_for_p95(TABLE, 0.1) is None
    with pytest.raises(LabkitError, match="target_s"):
        load.concurrency_for_p95(TABLE, 0)
    with pytest.raises(LabkitError, match="empty"):
        load.knee(TABLE.iloc[:0])


def test_panel_prediction():
    costs = ServingCosts(prefill_s=0.1, decode_s_per_token=0.02, weight_mib=500, kv_bytes_per_token=2**20,
                         int8_decode_ratio=0.5, int8_weight_mib=250, adapter_ratio=2.0, adapter_mib=10)
    p = predict(costs, concurrency=4, max_tokens=10, int8=False, adapters=False)
    assert p["one_request_s"] == pytest.approx(0.3) and p["p95_s"] == pytest.approx(1.2)
    assert p["memory_mib"] == pytest.approx(500 + 4 * 50)
    q = predict(costs, concurrency=1, max_tokens=10, int8=True, adapters=True)
    assert q["one_request_s"] == pytest.approx(0.4) and q["memory_mib"] == pytest.approx(250 + 10 + 50)
    with pytest.raises(LabkitError, match="concurrency and max_tokens"):
        predict(costs, concurrency=0, max_tokens=10, int8=False, adapters=False)
    with pytest.raises(LabkitError, match="decode_s_per_token"):
        ServingCosts(prefill_s=0.1, decode_s_per_token=0, weight_mib=500)


def test_server_rejects_bad_settings(tmp_path):
    with pytest.raises(LabkitError, match="save_for_serving"):
        Server(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LabkitError, match="bnb-8bit"):
        Server(tmp_path, quantization="int3")
    with pytest.raises(LabkitError, match="startup_timeout_s"):
        Server(tmp_path, startup_timeout_s=0)
    with pytest.raises(LabkitError, match="not running"):
        Server(tmp_path).chat("hi")
    with pytest.raises(LabkitError, match="not a file"):
        weights_sha256(tmp_path)
    assert 0 < free_port() < 65536


def test_load_test_refuses_other_hosts_and_floods(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    server = Server(tmp_path)
    server.base_url = "http://10.0.0.1:8000"
    with pytest.raises(LabkitError, match="only 127.0.0.1"):
        load.load_test(server, [1])
    server.base_url = f"http://127.0.0.1:{server.port}"
    with pytest.raises(LabkitError, match="not running"):
        load.load_test(server, [1])
