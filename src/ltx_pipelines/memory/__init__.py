"""Memory planning: where the transformer's weights live, what a request needs, streaming.

* ``offload`` - the offload modes and how ``auto`` picks one
* ``budget`` - estimates of GPU and host memory for a request, before anything loads
* ``streaming`` - transformer blocks streamed to the GPU from pinned host memory or from the file
* ``streamed_text_encoder`` - the Gemma text encoder with its decoder layers streamed the same way
* ``traced_peak`` - the peak device bytes of real code run on fake tensors: checks the estimates' formulas
"""
