"""LTX-2.5 (22B) on ltx-core 1.0.0: keyframe embedding, own-timestep audio<->video AdaLN, optional biases/prompt AdaLN.

One module per component of the 2.5 checkpoints: ``transformer`` (config detection, model, keyframes mask),
``duration_head`` (the shot-length regressor and the seconds -> frames rule).
"""
