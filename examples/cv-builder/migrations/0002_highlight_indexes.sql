-- Highlights are always read per job, in the order the person arranged them.
CREATE INDEX highlights_job_position ON highlights (job_id, position);
-- The feed lists jobs newest first.
CREATE INDEX jobs_start_date ON jobs (start_date DESC);
