"""Lab 05 · quantization, pruning and compression: round-to-nearest quantization from first principles (``rtn``),
outliers and salient channels (``salience``), real int8/NF4 kernels from torchao and bitsandbytes (``backends``),
magnitude and Wanda pruning and layer removal (``pruning``), healing and distillation (``recovery``), the compression
panel (``panel``) and the graded exercises."""
