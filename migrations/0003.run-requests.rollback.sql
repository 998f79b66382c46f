DROP TABLE IF EXISTS run_requests, schedule_marks;
