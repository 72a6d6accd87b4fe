"""The model layer: what the weight files are, and how each model is built and run one pass at a time.

Imports only ``utils`` and ltx-core; memory planning and the stages of a generation live above it.

* ``checkpoints`` - file kinds and metadata, read from headers before anything loads
* ``gemma`` - the Gemma text encoder's files and model; ``fp8`` - FP8 weights and matmuls
* ``prompt_enhancer`` - which Gemma a prompt-enhancer folder holds; a dense Gemma 4 that rewrites prompts
* ``transformer_blocks`` - the transformer as prepare / blocks / finish; ``cuda_graphs`` - the blocks replayed
* ``transformer_passes`` - the guidance passes of a step, scheduled through a block engine
* ``ltx25`` - what the LTX-2.5 checkpoints change, one module per component (``ltx25.transformer``,
  ``ltx25.duration_head``)
"""
