"""A local sandbox: the real bot against the loopback Bot API, a fake clock and a web page.

Study teams use it to train coordinators, to test the schedule by moving time ("time travel",
as commercial eCOA test environments offer) and to review every screen in both languages — all
on one machine, without Telegram, a token or a network. Nothing in here is a second
implementation of the bot: `world.Sandbox` builds the same `DiaryBot` that `diarybot run` builds
and plays Telegram users through `bot.localapi`.
"""
