"""Lab 12 (QLoRA on Llama and Mistral): NF4 from first principles (``quant``) and the graded exercises."""
