"""The engine the pipelines are composed of: it loads and keeps models and runs the stages of a generation.

It plans memory (``memory``), speeds passes up (``acceleration``) and spreads work over ranks (``parallel``).

* ``model_ledger`` - building models from files under one memory policy; ``lora_swap`` - stage-2 LoRA in memory
* ``prompts`` / ``prompt_enhancement`` - text encoding and Gemma's rewrite
* ``conditioning`` / ``media_latents`` - images, keyframes, videos and audio as latents
* ``denoising`` - sampling loops; ``guidance`` - denoise functions and multimodal guidance
* ``stages`` - denoise / upsample / decode; ``pipeline_base`` - what every pipeline shares
* ``cli`` - the command lines; ``reference_args`` - the reference's argparse helpers on them
"""
