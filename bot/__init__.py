"""Community awareness and feedback chatbot: channel-agnostic core and service."""
