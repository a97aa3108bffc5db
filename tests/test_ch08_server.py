"""Lab 08's server for real: `transformers serve` over a saved tiny Llama starts, answers through the openai client,
survives the production checklist and a bounded load test, and stops, also when the block fails. Any server left
running fails the test."""

import psutil
import pytest

import labkit as lk
from labkit.chapters.ch08_deployment import checklist, load
from labkit.chapters.ch08_deployment.server import Server, read_provenance, running_servers, save_for_serving
from labkit.core import LabkitError


@pytest.fixture(autouse=True)
def no_server_left():
    yield
    left = [p for p in psutil.Process().children(recursive=True) if "serve" in " ".join(p.cmdline())]
    assert not running_servers() and not left, f"a server process was left running: {left}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model, tokenizer = lk.load_model("tiny-llama")
    model = lk.apply_method(model, "lora", rank=4)
    work = tmp_path_factory.mktemp("lab08")
    adapter = lk.methods.save_trainable(model, work / "adapter")
    return save_for_serving(lk.methods.merge_lora(model), tokenizer, work / "served", adapter_file=adapter)


def test_model_card_holds_the_adapter_hash(folder):
    card = read_provenance(folder)
    assert len(card["adapter_sha256"]) == 64 and card["trust_remote_code"].startswith("false")
    with pytest.raises(LabkitError, match="merge them first"):
        save_for_serving(lk.apply_method(lk.load_model("tiny-llama")[0], "lora"), None, folder)


def test_server_answers_survives_bad_requests_and_stops_when_the_block_fails(folder):
    with pytest.raises(RuntimeError, match="a cell failed"), Server(folder) as server:
        assert server.running and "--no-trust-remote-code" in server.command()
        reply = server.chat("What is the capital of France?", max_tokens=4)
        assert isinstance(reply.text, str) and reply.completion_tokens >= 1
        assert server.chat("Hi", max_tokens=4, stream=True).ttft_s is not None
        with pytest.raises(LabkitError, match="at least one token"):
            server.chat("Hi", max_tokens=0)
        checks = checklist.production_checklist(server, over_context_words=600).set_index("case")
        assert checks["next_request_ok"].all()
        assert checks.loc["malformed JSON", "status"] == 422 and checks.loc["unknown model", "status"] == 400
        assert checks.loc["unknown adapter", "status"] == 400
        assert "context" in checks.loc["prompt over the context", "message"]
        table = load.load_test(server, [1, 2], requests=2, max_tokens=2, time_cap_s=30)
        assert list(table["done"]) == [2, 2] and (table["errors"] == 0).all()
        raise RuntimeError("a cell failed")
    assert not server.running


@pytest.mark.parametrize("settings, flag", [({"compile": True}, "--compile"),
                                            ({"quantization": "bnb-8bit"}, "--quantization")])
def test_the_compile_and_int8_servers_start_and_answer(folder, settings, flag):
    """The two levers lab 08 measures in full mode: each server starts with its flag, answers and stops."""
    with Server(folder, **settings) as server:
        assert flag in server.command()
        assert server.chat("What is the capital of France?", max_tokens=4).completion_tokens >= 1
    assert not server.running
