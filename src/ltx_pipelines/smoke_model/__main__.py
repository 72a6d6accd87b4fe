"""``python -m ltx_pipelines.smoke_model OUT_DIR``: write the smoke bundle (see the package docstring)."""

from ltx_pipelines.smoke_model import main

main()
