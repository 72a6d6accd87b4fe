"""The served app: an HTTP API, an OpenAI-compatible video endpoint and a web page over a durable job queue.

``python -m ltx_pipelines.serve`` (or ``ltx-pipelines-serve``) starts it. The parts, each in a module named
for what it does:

* ``settings``  - the command-line flags and what they decide (model files, limits, security)
* ``storage``   - the data folder: the job database, uploads and outputs, named by job id
* ``catalog``   - the eight pipelines as the server offers them, and building one from the model files
* ``requests``  - the request schema, and turning a request into a pipeline call
* ``uploads``   - storing uploaded images, videos and audio, checked by their content
* ``jobs``      - the job store (SQLAlchemy; SQLite in WAL mode by default)
* ``events``    - job updates fanned out from the worker threads to Server-Sent-Event streams
* ``worker``    - one worker thread per GPU, keeping its pipeline's models resident
* ``service``   - what the routes do to jobs: check, queue, cancel, delete, re-run
* ``security``  - the API key, the request-size cap, cross-origin checks
* ``app``       - the FastAPI application: the native API, the page, the docs
* ``openai_routes`` - ``/v1/videos``, the subset of OpenAI's video API that its Python client uses
* ``page/``     - the web page (plain HTML, CSS and JavaScript; no build step)

Nothing below ``ltx_pipelines.serve`` is imported by the pipelines.
"""
