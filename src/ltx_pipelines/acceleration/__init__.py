"""Making the transformer faster without changing what it computes (beyond bf16 rounding).

* ``block_plan``: a block's perturbation decisions as data (a static plan and per-sample masks);
* ``fused_ops`` / ``fused_block``: ltx-core's block forward restated as one function of explicit
  inputs, written so that ``torch.compile`` fuses its elementwise work;
* ``fp8_matmul``: FP8 matmuls whose activation quantization fuses into the preceding kernel;
* ``attention_choice``: the fastest SDPA backend per attention shape, measured once;
* ``attention_8bit``: ``--attention 8bit``, the self-attentions through an 8-bit kernel (SageAttention);
* ``compile_cache``: compiled artefacts kept across processes (Inductor's caches, portable bundles);
* ``compiled_blocks``: the block engine that runs all blocks through one compiled graph;
* ``step_cache``: optional reuse of the later blocks' residual between steps (off by default);
* ``options`` / ``executor`` / ``cli_flags``: the switches (compiled by token count on CUDA by default), how a
  pipeline and its command line turn them on.

Nothing here is imported by the lower layers except through ``cli_flags`` (flags only) and the
pipeline's ``pass_executor()``, which imports ``executor`` when an option is on.
"""
