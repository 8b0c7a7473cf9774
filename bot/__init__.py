"""pimbot: the Slack front door to Microsoft Entra Privileged Identity Management."""
