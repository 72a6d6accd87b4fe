"""The server's data folder. Every stored file is named by job id; no path ever comes from a client.

    <data-dir>/jobs.sqlite3            the job store (default database URL)
    <data-dir>/outputs/<job-id>.mp4    results, written atomically by the pipeline (temp file + rename)
    <data-dir>/uploads/<job-id>/<role>.<ext>   uploaded inputs (extension from the detected content)
    <data-dir>/smoke-model/            the smoke model, when --smoke builds it here
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

#: Job ids are 24 lowercase hex digits; anything else is not a job (and never reaches the file system).
JOB_ID = re.compile(r"^[0-9a-f]{24}$")
#: What ``media_io.write_video`` writes before its atomic rename: left over only when a process died mid-write.
_PARTIAL_OUTPUT = ".*.partial.mp4"


@dataclass(frozen=True)
class DataDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def smoke_model(self) -> Path:
        return self.root / "smoke-model"

    def default_database_url(self) -> str:
        return f"sqlite:///{self.root / 'jobs.sqlite3'}"

    def create(self) -> None:
        for folder in (self.root, self.outputs, self.uploads):
            folder.mkdir(parents=True, exist_ok=True)

    def output_path(self, job_id: str) -> Path:
        return self.outputs / f"{_checked(job_id)}.mp4"

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads / _checked(job_id)

    def stored_inputs(self, job_id: str, names: dict[str, str]) -> dict[str, Path]:
        """role -> path of the job's stored uploads (``names``: role -> file name, as the job store keeps them)."""
        folder = self.upload_dir(job_id)
        return {role: folder / Path(name).name for role, name in names.items()}

    def remove_job_files(self, job_id: str) -> None:
        self.output_path(job_id).unlink(missing_ok=True)
        shutil.rmtree(self.upload_dir(job_id), ignore_errors=True)

    def remove_partial_outputs(self) -> list[Path]:
        """Delete half-written results left by a process that died while writing one."""
        leftovers = sorted(self.outputs.glob(_PARTIAL_OUTPUT))
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def public_text(self, message: str, job_id: str) -> str:
        """A message without the server's folders: stored files are named by role (``image_0.png``)."""
        message = message.replace(f"{self.upload_dir(job_id)}/", "")
        return message.replace(str(self.root), "<data-dir>")


def _checked(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


__all__ = ["JOB_ID", "DataDir"]
