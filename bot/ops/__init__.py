"""Running the bot as a service: logs, health and metrics over HTTP, heartbeat, watchdog.

- `logs`        one line per event (text or JSON), secrets redacted;
- `monitor`     what "healthy" means: polling age, oldest queued urgent message, last tick;
- `health_http` `GET /healthz` and `GET /metrics` (a small aiohttp app of its own);
- `heartbeat`   GET `DIARYBOT_HEARTBEAT_URL` every minute while healthy;
- `watchdog`    `diarybot watchdog`: reads the database, e-mails the team (needs no Telegram);
- `service`     wires the above into `diarybot run`.
"""
