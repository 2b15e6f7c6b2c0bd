"""Background work: the job engine (Huey) and the jobs table a person follows on the Jobs page."""
