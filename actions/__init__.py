"""Custom actions of the assistant (rasa-sdk): thin adapters over the domain."""
