"""The server: a merged model saved as a safetensors folder with a model card, `transformers serve` over it as a
subprocess on 127.0.0.1, waited on through /health and always stopped; a client that refuses what the server
mishandles.

>>> folder = save_for_serving(merged, tokenizer, "served/lab08", adapter_file=adapter)  # doctest: +SKIP
>>> with Server(folder) as server:  # doctest: +SKIP
...     print(server.chat("What is the capital of France?").text)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from typing_extensions import Self  # typing.Self is 3.11+; pyproject promises 3.10

from ...core import LabkitError, cache_dir

HOST = "127.0.0.1"  # the lab serves and load-tests only this machine's loopback address
STOP_GRACE_S = 3.0  # seconds between SIGTERM and SIGKILL: a busy `transformers serve` ignored SIGTERM for > 10 s
CB_BLOCK_SIZE, CB_KV_TOKENS = 32, 8192  # continuous batching's KV cache: tokens per block, tokens in all
_RUNNING: dict[int, Server] = {}  # pid -> server started by this process and not stopped yet


def free_port() -> int:
    """A TCP port that is free now on 127.0.0.1 (the OS picks one when asked to bind port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def weights_sha256(path) -> str:
    """SHA-256 of a weights file's bytes: what the model card records as the adapter's provenance."""
    path = Path(path)
    if not path.is_file():
        raise LabkitError(f"{path} is not a file: pass the adapter's .safetensors file (save_trainable returns it).")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_for_serving(model, tokenizer, folder, *, adapter_file=None, base: str = "SmolLM2-135M-Instruct",
                     task: str = "") -> Path:
    """Save a plain (merged) model + tokenizer as safetensors with a model card holding the adapter's hash."""
    if hasattr(model, "peft_config"):
        raise LabkitError("This model still carries peft adapters: merge them first with lk.methods.merge_lora(model), "
                          "then save the plain model.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    adapter_hash = weights_sha256(adapter_file) if adapter_file is not None else "none (base model, no adapter)"
    card = ["---", f"base_model: {base}", "library_name: transformers", "license: apache-2.0", "tags: [peft-lab-kit, lora, merged]",
            "---", "", f"# {folder.name}", "", f"{base} with a LoRA adapter merged into its weights. {task}".strip(), "",
            "## Provenance", "", f"- adapter_sha256: {adapter_hash}",
            f"- merged_weights_sha256: {weights_sha256(folder / 'model.safetensors')}",
            "- trust_remote_code: false (plain Llama architecture, no custom code; served with --no-trust-remote-code)", ""]
    (folder / "README.md").write_text("\n".join(card))
    return folder


def read_provenance(folder) -> dict[str, str]:
    """The `- key: value` lines under the model card's Provenance heading."""
    card = Path(folder) / "README.md"
    if not card.exists():
        raise LabkitError(f"{card} is missing: save the model with save_for_serving(model, tokenizer, folder).")
    lines = card.read_text().split("## Provenance", 1)[-1].splitlines()
    return dict(line[2:].split(": ", 1) for line in lines if line.startswith("- ") and ": " in line)


def _transformers_cli() -> str:
    here = Path(sys.executable).parent / "transformers"
    found = str(here) if here.exists() else shutil.which("transformers")
    if found is None:
        raise LabkitError("The `transformers` command is missing: run `pip install 'transformers[serving]'`.")
    return found


try:  # looked up once here, so that the child only makes one C call between fork and exec
    _PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: Linux kills the server if the process that started it (the kernel) dies."""
    if _PRCTL is not None:
        _PRCTL(1, 9)  # prctl(PR_SET_PDEATHSIG, SIGKILL)


@dataclass
class Reply:
    """One chat answer and how long it took."""

    text: str
    latency_s: float  # request sent -> last byte
    ttft_s: float | None  # time to first token (streaming only)
    completion_tokens: int  # tokens generated (the server's count, or the tokenizer's for a stream)
    prompt_tokens: int  # prompt tokens, counted by the model's tokenizer with its chat template


class Server:
    """`transformers serve FOLDER` on 127.0.0.1 as a subprocess. A context manager: leaving the block stops it."""

    def __init__(self, folder, *, port: int | None = None, continuous_batching: bool = False, compile: bool = False,
                 quantization: str | None = None, startup_timeout_s: float = 180.0):
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise LabkitError(f"{folder} holds no saved model: write one with save_for_serving(model, tokenizer, folder).")
        if quantization not in (None, "bnb-8bit", "bnb-4bit"):
            raise LabkitError(f"quantization={quantization!r}: `transformers serve` takes None, 'bnb-8bit' or 'bnb-4bit'.")
        if startup_timeout_s <= 0:
            raise LabkitError(f"startup_timeout_s must be positive seconds (try 180), got {startup_timeout_s!r}.")
        self.folder, self.port = folder, port or free_port()
        self.continuous_batching, self.compile, self.quantization = continuous_batching, compile, quantization
        self.startup_timeout_s, self.proc, self.startup_s = startup_timeout_s, None, None
        self.base_url = f"http://{HOST}:{self.port}"
        self.model_id = str(folder)  # the server is pinned to this model; requests must name it
        self._tokenizer = self._context = self._client = None

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The exact command line the server runs."""
        cmd = [_transformers_cli(), "serve", self.model_id, "--host", HOST, "--port", str(self.port),
               "--device", "cpu" if not _cuda() else "auto", "--no-trust-remote-code", "--log-level", "warning"]
        if self.continuous_batching:  # a small fixed KV cache: sized from free memory it took ~15 s to set up here
            cmd += ["--continuous-batching", "--cb-block-size", str(CB_BLOCK_SIZE), "--cb-num-blocks",
                    str(CB_KV_TOKENS // CB_BLOCK_SIZE)]
        cmd += ["--compile"] if self.compile else []
        cmd += ["--quantization", self.quantization] if self.quantization else []
        return cmd

    def start(self) -> Server:
        """Start the process and wait until /health answers 200; raise with the server's log if it does not."""
        import httpx

        if self.running:
            return self
        hub_cache = cache_dir() / "serve-hub-cache"  # /v1/models scans it and answers 500 if it does not exist
        hub_cache.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub_cache), TOKENIZERS_PARALLELISM="false")
        self.log_path = Path(tempfile.mkstemp(prefix="labkit-serve-", suffix=".log")[1])
        begin = time.perf_counter()
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 (one C call)
        _RUNNING[self.proc.pid] = self
        while time.perf_counter() - begin < self.startup_timeout_s:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise LabkitError(f"The server exited while starting; its log ends with:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    self.startup_s = time.perf_counter() - begin
                    return self
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise LabkitError(f"The server did not answer /health within {self.startup_timeout_s:.0f} s: raise "
                          f"startup_timeout_s on a slow machine. Its log ends with:\n{tail}")

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> float:
        """SIGTERM to the server's process group, SIGKILL after STOP_GRACE_S; return the seconds it took."""
        begin = time.perf_counter()
        if self.proc is not None:
            for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 30.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            _RUNNING.pop(self.proc.pid, None)
        with contextlib.suppress(OSError, AttributeError):
            self.log_path.unlink()  # the log was only kept to explain a failed start
        return time.perf_counter() - begin

    def log_tail(self, n: int = 20) -> str:
        """The last lines the server wrote."""
        path = getattr(self, "log_path", None)
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path and path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- the client ------------------------------------------------------------------------------------------
    def client(self, timeout_s: float = 120.0):
        """An `openai.OpenAI` client pointed at this server."""
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key="none", timeout=timeout_s, max_retries=0)

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens the chat-formatted prompt takes, counted with the served model's own tokenizer."""
        from transformers import AutoConfig, AutoTokenizer

        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self.folder)
            self._context = AutoConfig.from_pretrained(self.folder).max_position_embeddings
        ids = self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                  tokenize=True)
        return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)

    def check_request(self, prompt: str, max_tokens: int) -> int:
        """Refuse what the server mishandles (max_tokens <= 0 gives a 500; an over-long prompt hangs it)."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise LabkitError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}: ask for at least one token.")
        if not isinstance(prompt, str) or not prompt:
            raise LabkitError("prompt must be a non-empty string: write the question to send.")
        n = self.prompt_tokens(prompt)
        if n + max_tokens > self._context:
            raise LabkitError(f"The prompt takes {n} tokens and max_tokens asks for {max_tokens} more, over the model's "
                              f"context of {self._context}: shorten the prompt or lower max_tokens.")
        return n

    def chat(self, prompt: str, *, max_tokens: int = 32, stream: bool = False) -> Reply:
        """Send one chat request (greedy) through the openai client; with ``stream`` also time the first token."""
        if not self.running:
            raise LabkitError("The server is not running: start it with `with Server(folder) as server:`.")
        n_prompt = self.check_request(prompt, max_tokens)
        self._client = self._client or self.client()
        kwargs = {"model": self.model_id, "messages": [{"role": "user", "content": prompt}],
                  "max_tokens": max_tokens, "temperature": 0.0}
        begin = time.perf_counter()
        if not stream:
            out = self._client.chat.completions.create(**kwargs)
            return Reply(out.choices[0].message.content or "", time.perf_counter() - begin, None,
                         out.usage.completion_tokens if out.usage else 0, n_prompt)
        first, parts = None, []
        for chunk in self._client.chat.completions.create(stream=True, **kwargs):
            piece = chunk.choices[0].delta.content if chunk.choices else None
            if piece:
                first = first if first is not None else time.perf_counter() - begin
                parts.append(piece)
        text = "".join(parts)
        n_out = len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return Reply(text, time.perf_counter() - begin, first, n_out, n_prompt)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def running_servers() -> list[Server]:
    """Servers this process started that are still alive."""
    return [s for s in list(_RUNNING.values()) if s.running]


def stop_all() -> int:
    """Stop every server this process started; return how many were running."""
    alive = running_servers()
    for server in list(_RUNNING.values()):
        server.stop()
    return len(alive)


atexit.register(stop_all)


def main(argv: list[str] | None = None) -> None:
    """`make serve`: serve lab 08's saved model (or the base model) on 127.0.0.1 until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--folder", default=str(cache_dir() / "served" / "lab08"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--continuous-batching", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not (folder / "config.json").exists():
        from ...models import load_model

        print(f"{folder} is empty (run lab 08 to serve the fine-tuned model): serving the base SmolLM2 instead")
        model, tokenizer = load_model("smollm2-135m")
        save_for_serving(model, tokenizer, folder)
    with Server(folder, port=args.port, continuous_batching=args.continuous_batching) as server:
        print(f"serving {folder} at {server.base_url}/v1 (model={server.model_id}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            server.proc.wait()


if __name__ == "__main__":
    main()
