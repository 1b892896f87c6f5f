"""When runbooks run: `parameters/schedule.yaml`, validated (`entries`, cron expressions in
`expression`), written for cron (`cron`) or exported for Airflow and Kubernetes (`export`),
and the `opslib schedule` commands (`cli`). opslib never schedules anything itself."""
