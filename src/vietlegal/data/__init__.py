"""The data contracts: raw record shapes, the conversation type, the processed split reader, the answers file."""
