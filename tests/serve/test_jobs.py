"""The job store on its own: order, the queue cap, claiming, cancelling, restart recovery."""

from __future__ import annotations

import pytest

from ltx_pipelines.serve.jobs import INTERRUPTED, JobRunning, JobStatus, JobStore, QueueFull, new_job_id


@pytest.fixture
def store(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    yield store
    store.close()


def add(store: JobStore, max_queue: int = 10, prompt: str = "p") -> str:
    job_id = new_job_id()
    geometry = {"height": 64, "width": 64, "num_frames": 9, "frame_rate": 24.0}
    store.add(job_id=job_id, pipeline="ti2vid_one_stage", request={"prompt": prompt}, inputs={}, geometry=geometry,
              max_queue=max_queue)  # fmt: skip
    return job_id


def test_the_database_is_in_wal_mode(store):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_jobs_are_claimed_in_submission_order(store):
    ids = [add(store) for _ in range(4)]
    claimed = [store.claim_next("cpu").id for _ in range(4)]
    assert claimed == ids
    assert store.claim_next("cpu") is None
    assert all(store.get(i).status is JobStatus.RUNNING for i in ids)


def test_a_full_queue_refuses_and_a_running_job_frees_a_place(store):
    for _ in range(3):
        add(store, max_queue=3)
    with pytest.raises(QueueFull):
        add(store, max_queue=3)
    store.claim_next("cpu")
    add(store, max_queue=3)  # the claimed job no longer waits
    assert store.count(JobStatus.QUEUED) == 3


def test_cancel_is_immediate_when_queued_and_a_flag_when_running(store):
    queued, running = add(store), add(store)
    store.claim_next("cpu")  # the first one
    first = store.request_cancel(queued)
    assert first.status is JobStatus.RUNNING and first.cancel_requested
    second = store.request_cancel(running)
    assert second.status is JobStatus.CANCELLED and second.finished_at is not None
    progress = store.update_progress(queued, stage="stage 1", step=1, total=4, progress=0.3, eta=2.0)
    assert progress.cancel_requested  # the worker sees the flag with its next progress update


def test_running_jobs_cannot_be_deleted(store):
    job_id = add(store)
    store.claim_next("cpu")
    with pytest.raises(JobRunning):
        store.delete(job_id)
    store.finish(job_id, JobStatus.COMPLETED, output=f"{job_id}.mp4")
    assert store.delete(job_id).id == job_id
    assert store.get(job_id) is None


def test_a_restart_fails_the_interrupted_job_and_keeps_the_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    first = JobStore(url)
    interrupted, waiting = add(first), add(first)
    first.claim_next("cpu")
    first.close()

    second = JobStore(url)  # "after the restart"
    failed = second.fail_interrupted()
    assert [j.id for j in failed] == [interrupted]
    assert second.get(interrupted).status is JobStatus.FAILED
    assert second.get(interrupted).error == INTERRUPTED
    assert second.claim_next("cpu").id == waiting
    second.close()


def test_pages_of_the_list(store):
    ids = [add(store) for _ in range(5)]
    page, more = store.list_jobs(limit=2)
    assert [j.id for j in page] == ids[::-1][:2] and more
    page, more = store.list_jobs(limit=2, after=page[-1].id)
    assert [j.id for j in page] == ids[::-1][2:4] and more
    page, more = store.list_jobs(limit=10, order="asc", after=ids[2])
    assert [j.id for j in page] == ids[3:] and not more
