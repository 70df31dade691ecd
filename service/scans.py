"""``python -m service.scans``: a dataset scan on the workers, as RQ jobs on REDIS_URL (or the embedded
Redis of the instance folder). The options are ``python -m visnet.scan``'s, which scans in one process.

    python -m service.scans photos/ --layers block3_pool,block5_pool     # plan here, compute on the workers
    python -m service.scans --resume instance/results/scans/<id>         # re-enqueue what is missing
    python -m service.scans --status instance/results/scans/<id>         # progress and queued jobs, as JSON

Exit status: 0 on success; 2 for a bad request (options, folder, archive, no Redis); 1 when jobs failed.
"""
import json
import sys

import redis

from service import embedded_redis
from service.jobs.scheduling import enqueue_scan, scan_status
from visnet.scan.__main__ import FAILURE, USAGE_ERROR, build_parser, plan_scan, scan_model
from visnet.scan.imagesets import UnsafeArchive
from visnet.settings import from_environment, scan_queue_name


def connect(settings) -> redis.Redis:
    url = settings.redis_url
    if url is None:  # the service's default: the embedded Redis of the instance folder
        url = embedded_redis.url_for(settings.instance_dir)
        if not embedded_redis.answers(url):
            raise ValueError(f"REDIS_URL is not set and no embedded Redis answers at {url} (start the service "
                             "or set REDIS_URL)")
    return redis.Redis.from_url(url)


def main(argv=None) -> int:
    args = build_parser("python -m service.scans").parse_args(argv)
    settings = from_environment()
    try:
        if args.status is not None:
            print(json.dumps(scan_status(connect(settings), args.status), indent=2))
            return 0
        scan_dir = args.resume if args.resume is not None else plan_scan(args, settings)
        queue_name = scan_queue_name(settings.queue_name, scan_model(scan_dir))  # its model's workers serve it
        summary = enqueue_scan(connect(settings), queue_name, scan_dir, job_timeout=settings.job_timeout,
                               result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl)
    except (ValueError, UnsafeArchive, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(f"enqueued on {queue_name!r}: {len(summary['enqueued'])} new jobs in the "
          f"{summary['phase']} phase, {len(summary['kept'])} already queued or running"
          + (f"; failed: {summary['failed']}" if summary["failed"] else ""))
    return FAILURE if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
