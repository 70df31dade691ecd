"""The functions RQ runs (enqueued by dotted path): photo jobs, dataset-scan jobs and their scheduling."""
