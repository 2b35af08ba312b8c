"""Input channels of the assistant: REST, Socket.IO (web widget), Slack, Telegram."""
