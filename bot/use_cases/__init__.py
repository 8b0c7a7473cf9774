"""Use cases: what a person or a timer asks the bot to do, over the domain and its ports."""
