"""Channels other than Telegram: SMS, WeCom group robot, e-mail (see bot/channels/dispatcher.py)."""
