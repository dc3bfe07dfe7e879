"""Running the bot on a server: operations.

- `logs`        one line per event (text or JSON), secrets redacted;
- `monitor`     what "healthy" means: polling age, oldest queued urgent message, last tick;
- `health_http` `GET /healthz` and `GET /metrics` (a small aiohttp app of its own);
- `heartbeat`   GET `DIARYBOT_HEARTBEAT_URL` every minute while healthy;
- `watchdog`    `diarybot watchdog`: reads the database, e-mails the team (needs no Telegram);
- `service`     wires the above into `diarybot run`;
- `lock`, `backups`, `restore`, `upgrade`, `cli`: one bot per database, scheduled backups,
  restores, migrations after a verified backup (`diarybot migrate`, `diarybot restore`).
"""
