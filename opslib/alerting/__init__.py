"""Alerting: which results deserve a message (`state`: hard and soft states, acks,
maintenance windows), sending it (`notify`), and how urgent an incident is (`severity`)."""
