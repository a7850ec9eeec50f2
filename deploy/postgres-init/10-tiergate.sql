-- tiergate's shared store (kill switch, rollouts, cap reservations, content) beside
-- Temporal's databases, on the stack's one PostgreSQL. Run once, when the volume is new;
-- tiergate migrates its own schema at every start.
CREATE DATABASE tiergate;
