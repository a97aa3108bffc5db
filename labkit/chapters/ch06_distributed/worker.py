"""The training script the launchers start: ``python -m labkit.chapters.ch06_distributed.worker JOB.json OUT.json``.

Each rank builds the same model and the same global batch, takes its slice of the batch, and runs the experiments
listed in the job one after another (DDP, FSDP2, ZeroRedundancyOptimizer, DeepSpeed ZeRO-1/2/3, FSDP2 over LoRA,
gloo collectives, Accelerate's FSDP). After backward and after the step each rank counts the bytes of parameters,
gradients and optimizer state it actually holds (its local shards). Rank 0 writes everything as JSON to OUT.json.
``single_process_run`` runs the same steps in one process, the reference the distributed losses must match.
"""

from __future__ import annotations

import json
import os
import sys
import time

TORCH_EXPERIMENTS = ("single", "ddp", "zero_redundancy", "fsdp2_reshard", "fsdp2_no_reshard", "fsdp2_lora", "collectives")
DEEPSPEED_EXPERIMENTS = ("zero1", "zero2", "zero3")
ACCELERATE_EXPERIMENTS = ("accelerate_fsdp",)
EXPERIMENTS = TORCH_EXPERIMENTS + DEEPSPEED_EXPERIMENTS + ACCELERATE_EXPERIMENTS
DEVICE = "cpu"  # set per rank by main(): "cuda:<local rank>" under nccl
DEFAULT_JOB = {"model": "tiny-llama", "steps": 3, "batch_size": 4, "seq_len": 32, "lr": 1e-3, "seed": 0,
               "lora_rank": 8, "lora_lr": 1e-2, "sizes": [1024, 65536, 1048576], "repeats": 5, "estimates": []}


# ---- what every experiment shares -----------------------------------------------------------------------------------


def build_model(job: dict):
    """The job's model with its input and output embeddings untied (so FSDP can shard each as its own unit)."""
    import torch

    from ...models import load_model

    model, _ = load_model(job["model"], device="cpu", dtype="fp32")
    if getattr(model.config, "tie_word_embeddings", False):
        model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
        model.config.tie_word_embeddings = False
    model.train()
    return model.to(DEVICE)


def global_batch(job: dict, vocab_size: int):
    """The same (batch_size, seq_len) token ids on every rank and in the single-process run."""
    import torch

    gen = torch.Generator().manual_seed(job["seed"])
    return torch.randint(0, vocab_size, (job["batch_size"], job["seq_len"]), generator=gen).to(DEVICE)


def rank_slice(ids, rank: int, world: int):
    """This rank's equal share of the global batch's rows."""
    per = ids.shape[0] // world
    return ids[rank * per:(rank + 1) * per]


def adamw(params, job: dict):
    import torch

    return torch.optim.AdamW(params, lr=job["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def tensor_bytes(t) -> int:
    """Bytes this process holds for ``t``: a DTensor's local shard, a DeepSpeed ZeRO-3 parameter's partition."""
    if t is None:
        return 0
    if hasattr(t, "to_local"):
        t = t.to_local()
    return t.numel() * t.element_size()


def param_bytes(model) -> int:
    total = 0
    for p in model.parameters():
        total += tensor_bytes(p.ds_tensor) if hasattr(p, "ds_tensor") else tensor_bytes(p)
    return total


def grad_bytes(model) -> int:
    return sum(tensor_bytes(p.grad) for p in model.parameters())


def state_bytes(optimizer) -> int:
    """Bytes of a torch optimizer's state tensors (Adam's two moments; 'step' counters are left out)."""
    total = 0
    for state in optimizer.state.values():
        for name, value in state.items():
            if name != "step" and hasattr(value, "numel"):
                total += tensor_bytes(value)
    return total


def n_params(model) -> int:
    return sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())


def single_process_run(job: dict | None = None) -> dict:
    """The reference: the same model, global batch and AdamW steps in one process. Returns losses and sizes."""
    job = {**DEFAULT_JOB, **(job or {})}
    import torch

    torch.manual_seed(job["seed"])
    model = build_model(job)
    ids = global_batch(job, model.config.vocab_size)
    opt = adamw(model.parameters(), job)
    losses = []
    for _ in range(job["steps"]):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = grad_bytes(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return {"experiment": "single", "losses": losses, "n_params": n_params(model), "param_bytes": param_bytes(model),
            "grad_bytes": grads, "optim_bytes": state_bytes(opt), "world_size": 1}


# ---- torch.distributed experiments ----------------------------------------------------------------------------------


def _my_rows(job, model, rank, world):
    return rank_slice(global_batch(job, model.config.vocab_size), rank, world)


def _mean_loss(loss) -> float:
    import torch.distributed as dist

    value = loss.detach().clone().reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return float(value.item() / dist.get_world_size())


def _train(job, model, opt, ids, *, step=None, backward=None, forward_probe=None):
    """Run the job's steps; measure after the first forward, backward and step. Returns (losses, sizes)."""
    losses, sizes = [], {}
    for i in range(job["steps"]):
        loss = model(input_ids=ids, labels=ids).loss
        if i == 0:
            sizes["param_bytes_in_step"] = forward_probe() if forward_probe else None
        (backward or (lambda value: value.backward()))(loss)
        if i == 0:
            sizes["grad_bytes"] = job["_grad_probe"]() if "_grad_probe" in job else None
        (step or opt.step)()
        if opt is not None and step is None:
            opt.zero_grad(set_to_none=True)
        losses.append(_mean_loss(loss))
    return losses, sizes


def run_ddp(job, rank, world):
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = build_model(job)
    ids = _my_rows(job, model, rank, world)
    ddp = DDP(model)
    opt = adamw(ddp.parameters(), job)
    job = {**job, "_grad_probe": lambda: grad_bytes(model)}
    losses, sizes = _train(job, ddp, opt, ids, forward_probe=lambda: param_bytes(model))
    # DDP averaged the gradients: every rank holds the same ones (check on one tensor's checksum)
    return {"losses": losses, **sizes, "param_bytes": param_bytes(model), "optim_bytes": state_bytes(opt),
            "n_params": n_params(model)}


def run_zero_redundancy(job, rank, world):
    import torch
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = build_model(job)
    ids = _my_rows(job, model, rank, world)
    ddp = DDP(model)
    opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=torch.optim.AdamW, lr=job["lr"],
                                  betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    job = {**job, "_grad_probe": lambda: grad_bytes(model)}
    losses, sizes = _train(job, ddp, opt, ids, forward_probe=lambda: param_bytes(model))
    return {"losses": losses, **sizes, "param_bytes": param_bytes(model), "optim_bytes": state_bytes(opt.optim),
            "n_params": n_params(model)}


def _fully_shard(model, reshard: bool):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(DEVICE.split(":")[0], (int(os.environ["WORLD_SIZE"]),))
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    units = [inner.model.embed_tokens, *inner.model.layers, inner.lm_head]
    for unit in units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
    return model


def run_fsdp2(job, rank, world, *, reshard: bool, lora: bool = False):
    model = build_model(job)
    ids = _my_rows(job, model, rank, world)
    if lora:
        from ...methods import apply_method

        model = apply_method(model, "lora", rank=job["lora_rank"], alpha=2 * job["lora_rank"])
    _fully_shard(model, reshard)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(trainable, {**job, "lr": job["lora_lr"]} if lora else job)
    job = {**job, "_grad_probe": lambda: grad_bytes(model)}
    losses, sizes = _train(job, model, opt, ids, forward_probe=lambda: param_bytes(model))
    out = {"losses": losses, **sizes, "param_bytes": param_bytes(model), "optim_bytes": state_bytes(opt),
           "n_params": sum(p.numel() for p in model.parameters())}
    if lora:
        out["trainable_params"] = sum(p.numel() for p in trainable)
        out["trainable_param_bytes"] = sum(tensor_bytes(p) for p in trainable)
    return out


def run_collectives(job, rank, world):
    """Seconds per call of all-reduce, all-gather and reduce-scatter on fp32 messages of each size (bytes)."""
    import torch
    import torch.distributed as dist

    rows = []
    for size in job["sizes"]:
        n = max(world, size // 4 // world * world)
        x = torch.ones(n, device=DEVICE)
        gathered = torch.empty(n * world, device=DEVICE)
        shard = torch.empty(n // world, device=DEVICE)
        calls = {"all_reduce": lambda x=x: dist.all_reduce(x),
                 "all_gather": lambda x=x, out=gathered: dist.all_gather_into_tensor(out, x),
                 "reduce_scatter": lambda x=x, out=shard: dist.reduce_scatter_tensor(out, x)}
        for name, call in calls.items():
            try:
                call()  # warm-up
            except (RuntimeError, ValueError) as err:  # a backend without this collective
                rows.append({"collective": name, "bytes": n * 4, "time_s": None, "error": str(err)[:200]})
                continue
            dist.barrier()
            start = time.perf_counter()
            for _ in range(job["repeats"]):
                call()
            rows.append({"collective": name, "bytes": n * 4, "time_s": (time.perf_counter() - start) / job["repeats"]})
    return {"rows": rows}


# ---- DeepSpeed ------------------------------------------------------------------------------------------------------


ACCUMULATION = 2  # DeepSpeed runs take two micro-batches per step: ZeRO-1 keeps whole gradients between them


def deepspeed_config(job: dict, stage: int, world: int) -> dict:
    """The DeepSpeed config of one run: fp32, AdamW (torch's), ZeRO ``stage``, two micro-batches per rank and step."""
    return {"train_batch_size": job["batch_size"],
            "train_micro_batch_size_per_gpu": job["batch_size"] // world // ACCUMULATION,
            "gradient_accumulation_steps": ACCUMULATION, "steps_per_print": 10**9, "wall_clock_breakdown": False,
            "optimizer": {"type": "AdamW", "params": {"lr": job["lr"], "betas": [0.9, 0.999], "eps": 1e-8,
                                                      "weight_decay": 0.0, "torch_adam": True}},
            "zero_optimization": {"stage": stage}}


def _flat_tensors(obj):
    """Tensors inside ``obj`` (a tensor, or lists and dicts of them)."""
    if hasattr(obj, "numel") and hasattr(obj, "data_ptr"):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _flat_tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _flat_tensors(item)


def _ds_grad_bytes(engine, stage: int) -> int:
    """Gradient bytes a rank holds after a backward: whole gradients on the parameters plus ZeRO's partitions.

    DeepSpeed keeps them in different places per stage (``p.grad``, ``grads_in_partition``, ``all_grad_tensors``,
    ``averaged_gradients``, ZeRO-3's per-parameter partitions); each buffer is counted once, by its address.
    """
    opt = engine.optimizer
    places = [[p.grad for p in engine.module.parameters()],
              [getattr(p, "grad_accum", None) for p in engine.module.parameters()]]
    for name in ("grads_in_partition", "all_grad_tensors", "averaged_gradients",
                 "_DeepSpeedZeroOptimizer_Stage3__param_id_to_grad_partition"):
        places.append(getattr(opt, name, None))
    seen, total = set(), 0
    for tensor in _flat_tensors(places):
        if tensor.numel() and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor_bytes(tensor)
    return total


def _ds_optim_bytes(engine, stage: int) -> int:
    """Optimizer bytes a rank holds: the fp32 master partition plus Adam's moments on it."""
    opt = engine.optimizer
    masters = opt.fp32_partitioned_groups_flat if stage == 3 else opt.single_partition_of_fp32_groups
    return sum(tensor_bytes(t) for t in masters) + state_bytes(opt.optimizer)


def _zero3_estimate(n_params, largest_layer_params, gpus):
    """DeepSpeed's estimate_zero3_model_states_mem_needs per GPU, GiB (computed where deepspeed is imported)."""
    from .paper import deepspeed_estimate_gib

    return deepspeed_estimate_gib(int(n_params), int(largest_layer_params), int(gpus))


def run_deepspeed(job, rank, world, stage: int):
    import deepspeed

    model = build_model(job)
    ids = _my_rows(job, model, rank, world)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                           config=deepspeed_config(job, stage, world))
    losses, sizes = [], {}
    for i in range(job["steps"]):
        step_loss = 0.0
        for micro in ids.chunk(ACCUMULATION):
            loss = engine(input_ids=micro, labels=micro).loss
            if i == 0 and "param_bytes_in_step" not in sizes:
                sizes["param_bytes_in_step"] = param_bytes(engine.module)
            engine.backward(loss)
            if i == 0 and "grad_bytes" not in sizes:
                sizes["grad_bytes"] = _ds_grad_bytes(engine, stage)  # after the first micro-batch's backward
            engine.step()
            step_loss += loss.item() / ACCUMULATION
        losses.append(_mean_loss(__import__("torch").tensor(step_loss, device=DEVICE)))
    out = {"losses": losses, **sizes, "param_bytes": param_bytes(engine.module),
           "optim_bytes": _ds_optim_bytes(engine, stage), "n_params": n_params(engine.module)}
    if hasattr(engine, "destroy"):
        engine.destroy()
    return out


# ---- Accelerate -----------------------------------------------------------------------------------------------------


def run_accelerate(job, rank, world):
    from accelerate import Accelerator

    accelerator = Accelerator()
    model = build_model(job)
    ids = _my_rows(job, model, rank, world)
    opt = adamw(model.parameters(), job)
    model, opt = accelerator.prepare(model, opt)
    losses = []
    grads = None
    for i in range(job["steps"]):
        loss = model(input_ids=ids, labels=ids).loss
        accelerator.backward(loss)
        if i == 0:
            grads = grad_bytes(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(_mean_loss(loss))
    return {"losses": losses, "param_bytes": param_bytes(model), "grad_bytes": grads,
            "optim_bytes": state_bytes(opt.optimizer if hasattr(opt, "optimizer") else opt),
            "param_bytes_in_step": None, "n_params": sum(p.numel() for p in model.parameters()),
            "distributed_type": str(accelerator.distributed_type)}


# ---- the entry point ------------------------------------------------------------------------------------------------


def main(job_path: str, out_path: str) -> None:
    import torch
    import torch.distributed as dist

    with open(job_path) as f:
        job = {**DEFAULT_JOB, **json.load(f)}
    global DEVICE
    torch.set_num_threads(1)  # two ranks on two cores: one thread each
    if job.get("backend") == "nccl":
        DEVICE = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(DEVICE)
    if job["engine"] == "deepspeed":
        import deepspeed

        deepspeed.init_distributed(dist_backend=job.get("backend", "gloo"))
    elif job["engine"] == "accelerate":
        from accelerate import PartialState

        PartialState()  # accelerate starts the process group from its config (gloo on CPU)
    else:
        dist.init_process_group(backend=job.get("backend", "gloo"))
    results = {}
    rank, world = dist.get_rank(), dist.get_world_size()
    started = time.perf_counter()
    for name in job["experiments"]:
        torch.manual_seed(job["seed"])
        t0 = time.perf_counter()
        if name == "single":
            out = single_process_run(job)  # every rank runs the one-process reference on the whole batch
        elif name == "ddp":
            out = run_ddp(job, rank, world)
        elif name == "zero_redundancy":
            out = run_zero_redundancy(job, rank, world)
        elif name in ("fsdp2_reshard", "fsdp2_no_reshard", "fsdp2_lora"):
            out = run_fsdp2(job, rank, world, reshard=name != "fsdp2_no_reshard", lora=name == "fsdp2_lora")
        elif name == "collectives":
            out = run_collectives(job, rank, world)
        elif name in DEEPSPEED_EXPERIMENTS:
            out = run_deepspeed(job, rank, world, int(name[-1]))
        elif name == "accelerate_fsdp":
            out = run_accelerate(job, rank, world)
        else:
            raise ValueError(f"unknown experiment {name!r}")
        out["time_s"] = time.perf_counter() - t0
        per_rank = [None] * world
        dist.all_gather_object(per_rank, out)
        results[name] = per_rank
    if rank == 0:
        payload = {"zero3_estimates_gib": [_zero3_estimate(*case) for case in job.get("estimates", [])],
                   "engine": job["engine"], "world_size": world, "backend": dist.get_backend(),
                   "import_to_end_s": time.perf_counter() - started, "results": results}
        with open(out_path + ".tmp", "w") as f:
            json.dump(payload, f)
        os.replace(out_path + ".tmp", out_path)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]
    main(args[0], args[1])
