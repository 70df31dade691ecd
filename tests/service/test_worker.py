"""The worker's runtime without TensorFlow: the RQ worker it builds, and jobs queued under the previous
release's dotted paths (``visnet.jobs.deconv`` …), which still run after an upgrade."""
import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import import_attribute

from service.worker import RENAMED_JOB_FUNCTIONS, RenamedFunctionsJob, build_worker, engine_renewal, main
from visnet.settings import from_environment, scan_queue_name


def test_every_old_dotted_path_names_a_job_function_that_exists():
    assert set(RENAMED_JOB_FUNCTIONS) == {"visnet.jobs.deconv", "visnet.jobs.view", "visnet.scan.jobs.start",
                                          "visnet.scan.jobs.run_chunk", "visnet.scan.jobs.merge",
                                          "visnet.scan.jobs.project", "visnet.scan.jobs.finish"}
    for new in RENAMED_JOB_FUNCTIONS.values():
        assert callable(import_attribute(new)), new


def test_a_job_queued_under_an_old_path_runs_the_new_function(redis_conn):
    old = Queue("visnet-old", connection=redis_conn).enqueue_call("visnet.jobs.view", args=("upload", "results", "key"))
    assert Job.fetch(old.id, connection=redis_conn).func_name == "visnet.jobs.view"  # as stored
    renamed = RenamedFunctionsJob.fetch(old.id, connection=redis_conn)
    assert renamed.func_name == "service.jobs.photo.view"
    from service.jobs import photo

    assert renamed.func is photo.view
    current = Queue("visnet-new", connection=redis_conn).enqueue_call("tests.support.fault_jobs.sleep_then_report",
                                                                     args=(0,))
    assert RenamedFunctionsJob.fetch(current.id, connection=redis_conn).func_name == (
        "tests.support.fault_jobs.sleep_then_report")  # other paths pass through


def test_the_worker_serves_photos_then_scans_with_the_renaming_job_class(redis_conn, tmp_path):
    settings = from_environment({"VISNET_QUEUE": "visnet-q", "VISNET_INSTANCE_DIR": str(tmp_path)})
    worker = build_worker(redis_conn, settings, "visnet-test-worker")
    assert [queue.name for queue in worker.queues] == ["visnet-q", scan_queue_name("visnet-q")]
    assert worker.job_class is RenamedFunctionsJob
    assert all(queue.job_class is RenamedFunctionsJob for queue in worker.queues)
    # a stored model's worker: its own photo queue, then its own scans' queue (a name no photo queue has)
    settings = from_environment({"VISNET_QUEUE": "visnet-q", "VISNET_INSTANCE_DIR": str(tmp_path), "VISNET_MODEL": "tiny"})
    worker = build_worker(redis_conn, settings, "visnet-test-worker-tiny")
    assert [queue.name for queue in worker.queues] == ["visnet-q-model-tiny", "visnet-q-scans-model-tiny"]


def test_the_workers_warm_up_is_a_switch():
    assert from_environment({}).worker_warm_up is True
    assert from_environment({"VISNET_WORKER_WARM_UP": "0"}).worker_warm_up is False
    with pytest.raises(ValueError, match="VISNET_WORKER_WARM_UP"):
        from_environment({"VISNET_WORKER_WARM_UP": "sometimes"})


def test_the_worker_runs_its_between_jobs_step_after_each_job_has_finished(redis_conn, tmp_path):
    settings = from_environment({"VISNET_QUEUE": "visnet-between", "VISNET_INSTANCE_DIR": str(tmp_path)})
    queue = Queue("visnet-between", connection=redis_conn)
    jobs = [queue.enqueue_call("tests.support.fault_jobs.sleep_then_report", args=(0,)) for _ in range(2)]
    seen = []  # each job's status when the step ran: the user does not wait for the step
    worker = build_worker(redis_conn, settings, "visnet-test-between", between_jobs=lambda interrupted: seen.append(
        [Job.fetch(job.id, connection=redis_conn).get_status() for job in jobs]))
    worker.work(burst=True)
    assert seen == [[JobStatus.FINISHED, JobStatus.QUEUED], [JobStatus.FINISHED, JobStatus.FINISHED]]


def test_the_between_jobs_step_hears_which_job_its_time_limit_stopped(redis_conn, tmp_path):
    settings = from_environment({"VISNET_QUEUE": "visnet-limit", "VISNET_INSTANCE_DIR": str(tmp_path)})
    queue = Queue("visnet-limit", connection=redis_conn)
    slow = queue.enqueue_call("tests.support.fault_jobs.sleep_then_report", args=(30,), timeout=1)
    failing = queue.enqueue_call("tests.support.fault_jobs.note_then_fail", args=(str(tmp_path / "notes"),))
    quick = queue.enqueue_call("tests.support.fault_jobs.sleep_then_report", args=(0,))
    seen = []
    build_worker(redis_conn, settings, "visnet-test-limit", between_jobs=lambda interrupted: seen.append(
        interrupted)).work(burst=True)
    assert [job.get_status(refresh=True) for job in (slow, failing, quick)] == [
        JobStatus.FAILED, JobStatus.FAILED, JobStatus.FINISHED]
    assert seen == [True, False, False]  # a job that failed on its own leaves the engine as it was


class FakeEngine:
    def __init__(self, grows=True):
        self.calls = []
        if grows:
            self.renew_if_grown = lambda warm_up: self.calls.append(("if grown", warm_up))

    def renew(self, warm_up):
        self.calls.append(("renew", warm_up))
        return 0.5


def test_between_jobs_the_engine_is_renewed_with_the_workers_warm_up_setting(tmp_path):
    engine = FakeEngine()
    engine_renewal(engine, from_environment({"VISNET_WORKER_WARM_UP": "0"}), "w")()
    engine_renewal(engine, from_environment({}), "w")()
    assert engine.calls == [("if grown", False), ("if grown", True)]


def test_after_a_job_its_time_limit_stopped_the_engine_starts_on_a_fresh_graph(tmp_path):
    for engine in (FakeEngine(), FakeEngine(grows=False)):  # VGG16's engine, and a chain model's
        engine_renewal(engine, from_environment({}), "w")(interrupted=True)
        engine_renewal(engine, from_environment({"VISNET_WORKER_WARM_UP": "0"}), "w")(interrupted=True)
        engine_renewal(engine, from_environment({}), "w")(interrupted=False)
        assert engine.calls == [("renew", True), ("renew", False)] + [("if grown", True)] * hasattr(
            engine, "renew_if_grown")


@pytest.mark.parametrize("variable, value, message", [
    ("VISNET_JOB_TIMEOUT", "abc", "VISNET_JOB_TIMEOUT='abc' is not a whole number"),
    ("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", "1", "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS='1': with it, oneDNN reuses"),
])
def test_a_setting_that_cannot_be_used_stops_the_worker_in_one_line(monkeypatch, capsys, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        main([])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and f"worker.py: error: {message}" in error and "Traceback" not in error
