"""LTX-2.5 (22B) on ltx-core 1.0.0: keyframe embedding, own-timestep audio<->video AdaLN, optional biases/prompt AdaLN.

One module per component of the 2.5 checkpoints: ``transformer`` (config detection, model, keyframes mask),
``duration_head`` (the shot-length regressor and the seconds -> frames rule), ``text_encoder`` (Gemma 4 from the
packed text-encoder file, its tokenizer) and ``text_embeddings`` (the 1.2.0 embeddings processor: projections from
the text encoder's file, connectors from the transformer's).
"""
