"""groupwarden: streaming moderation for group chats."""

__version__ = "0.1.0"
