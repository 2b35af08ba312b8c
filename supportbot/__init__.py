"""Runtime glue of the support assistant: settings, the process runner and the chat page."""
