"""One generation across several processes (GPUs, or CPU ranks with gloo), on torch.distributed.

Started by ``torchrun --nproc-per-node N -m ltx_pipelines.<name> ...`` (or by constructing a
pipeline inside an initialised process group):

* ``process_group`` - detect torchrun, check the set-up, start one group; :class:`ParallelContext`
* ``launch`` - the command line under torchrun: one group around ``main()``, a failed rank ends all
* ``collectives`` - the collectives we use, timed on request (communication time in benchmarks)
* ``guidance_split`` - the guidance passes of a step spread across ranks, results gathered
* ``ulysses`` - sequence parallelism: tokens sharded across ranks, heads swapped around attention
* ``decode`` - VAE decode tiles decoded on different ranks, blended on rank 0
* ``text_encoding`` - prompts encoded (and enhanced) on rank 0, broadcast to the others
"""
