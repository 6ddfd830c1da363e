"""Matchmaking-event (对接会) scheduling: assign need–outcome meetings to time slots."""
